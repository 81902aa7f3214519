"""SQL of the PostgreSQL store's searches: keyword, dense and their RRF fusion.

Each builder returns a SELECT that lists ``ref``, ``score`` and ``rank``
(1 = best) and a dict of its parameters. Parameter names carry a prefix so
that several legs can share one statement in ``fusion_query``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from torah_study.index.base import DenseLeg, Filters, KeywordLeg, Leg
from torah_study.index.pg_search import CONFIGURATION

Params = dict[str, Any]


def filter_clause(alias: str, filters: Filters, prefix: str, params: Params) -> str:
    """Return ``AND (…)`` restricting rows to the books or categories (any match)."""
    clauses: list[str] = []
    if filters.books:
        params[f"{prefix}books"] = list(filters.books)
        clauses.append(f"{alias}.book = ANY(%({prefix}books)s)")
    if filters.categories:
        params[f"{prefix}categories"] = list(filters.categories)
        clauses.append(f"{alias}.categories && %({prefix}categories)s::text[]")
    return f" AND ({' OR '.join(clauses)})" if clauses else ""


def query_words(query: str) -> list[str]:
    return list(dict.fromkeys(query.split()))


def keyword_query(leg: KeywordLeg, prefix: str = "") -> tuple[str, Params]:
    """Rank segments that contain any word of the query by ``ts_rank``.

    Normalisation 1 divides the rank by 1 + log(document length), so long
    segments do not win by size alone. Ties break by ref, so the order is
    the same on every run.
    """
    # TODO: ts_rank has no inverse document frequency and its scores sit in a
    # narrow band, so on the whole export the reranker's relative keyword
    # score lets more weak candidates through the gate than with LanceDB's
    # BM25 (docs/postgres.md). A BM25 in SQL fixed most of it but was eight
    # times slower; a bounded, fast BM25 is still to be found.
    params: Params = {f"{prefix}words": query_words(leg.query), f"{prefix}k": leg.k}
    where = filter_clause("s", leg.filters, prefix, params)
    sql = f"""
        SELECT ref, score, row_number() OVER (ORDER BY score DESC, ref) AS rank
        FROM (
            SELECT s.ref, ts_rank(s.search_vector, q.query, 1)::float8 AS score
            FROM retrieval_segments AS s, (
                SELECT retrieval_any_word(plainto_tsquery('{CONFIGURATION}', w))
                    AS query
                FROM unnest(%({prefix}words)s::text[]) AS w
            ) AS q
            WHERE s.search_vector @@ q.query{where}
            ORDER BY score DESC, s.ref
            LIMIT %({prefix}k)s
        ) AS found"""
    return sql, params


def dense_query(leg: DenseLeg, prefix: str = "") -> tuple[str, Params]:
    """Select the nearest vectors by cosine distance, scored by the cosine.

    The HNSW index runs the inner query. Its rows are approximate and, with
    ``hnsw.iterative_scan = relaxed_order``, not strictly ordered, so the
    outer query sorts them again.
    """
    params: Params = {
        f"{prefix}vector": np.asarray(leg.vector, dtype=np.float32),
        f"{prefix}k": leg.k,
    }
    where = filter_clause("v", leg.filters, prefix, params)
    sql = f"""
        SELECT ref, 1.0 - distance AS score,
            row_number() OVER (ORDER BY distance, ref) AS rank
        FROM (
            SELECT v.ref, (v.embedding <=> %({prefix}vector)s)::float8 AS distance
            FROM retrieval_vectors AS v
            WHERE true{where}
            ORDER BY v.embedding <=> %({prefix}vector)s
            LIMIT %({prefix}k)s
        ) AS nearest"""
    return sql, params


def leg_query(leg: Leg, prefix: str = "") -> tuple[str, Params]:
    if isinstance(leg, KeywordLeg):
        return keyword_query(leg, prefix)
    return dense_query(leg, prefix)


def fusion_query(legs: Sequence[Leg], k: int) -> tuple[str, Params]:
    """Run every leg as a CTE and fuse their ranks by reciprocal rank fusion.

    The result matches ``retrieval.hybrid.reciprocal_rank_fusion`` exactly:
    the sum adds each ref's terms in leg order (floating-point addition is
    not associative), scores below zero count as zero, and equal sums keep
    the order in which the legs first listed the refs.
    """
    params: Params = {"rrf_k": k}
    ctes: list[str] = []
    unions: list[str] = []
    for index, leg in enumerate(legs):
        sql, leg_params = leg_query(leg, prefix=f"l{index}_")
        params.update(leg_params)
        kind = "keyword" if isinstance(leg, KeywordLeg) else "dense"
        ctes.append(f"leg{index} AS MATERIALIZED ({sql})")
        unions.append(
            f"SELECT {index} AS leg, '{kind}' AS kind, ref, score, rank FROM leg{index}"
        )
    sql = f"""
        WITH {", ".join(ctes)},
        hits AS ({" UNION ALL ".join(unions)})
        SELECT ref,
            sum(1.0::float8 / (%(rrf_k)s + rank) ORDER BY leg, rank) AS rrf,
            min(rank) FILTER (WHERE kind = 'keyword') AS keyword_rank,
            CASE WHEN count(*) FILTER (WHERE kind = 'keyword') > 0 THEN
                greatest(0.0, max(score) FILTER (WHERE kind = 'keyword')) END
                AS keyword_score,
            min(rank) FILTER (WHERE kind = 'dense') AS dense_rank,
            CASE WHEN count(*) FILTER (WHERE kind = 'dense') > 0 THEN
                greatest(0.0, max(score) FILTER (WHERE kind = 'dense')) END
                AS dense_score,
            min(leg * 1000000 + rank) AS first_seen
        FROM hits
        GROUP BY ref
        ORDER BY rrf DESC, first_seen"""
    return sql, params
