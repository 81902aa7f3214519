"""SQL of the PostgreSQL store's searches: keyword, dense and their RRF fusion.

Each builder returns a SELECT that lists ``ref``, ``score`` and ``rank``
(1 = best) and a dict of its parameters. Parameter names carry a prefix so
that several legs can share one statement in ``fusion_query``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from torah_study.index.base import DenseLeg, Filters, KeywordLeg, Leg
from torah_study.index.pg_search import CONFIGURATION
from torah_study.index.pg_terms import Term, Totals

Params = dict[str, Any]
# The statistics of one keyword leg: the library totals and its lexemes.
LegTerms = tuple[Totals, Sequence[Term]]

# Okapi BM25 parameters, the usual defaults.
BM25_K1 = 1.2
BM25_B = 0.75
# The rarest lexemes of a query select the rows to score, as long as the
# sum of their document counts stays within this. The rarest one always
# selects, and the other lexemes still add to the score of selected rows.
# TODO: chosen on the 459,158-segment export. At 3.5 million segments the
# keyword leg took 564 ms at p50 on a loaded machine (docs/benchmarks.md).
SELECTING_DOCUMENTS = 20_000
# At most this many selected rows are scored, in no particular order (only
# reached when the rarest lexeme alone is in more segments than this).
MAX_SCANNED = 50_000
# Selected rows are first scored as if each lexeme occurred once. Then the
# best RESCORED_FACTOR * k are scored again with their term frequencies.
RESCORED_FACTOR = 2


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


def keyword_query(
    leg: KeywordLeg, prefix: str = "", terms: LegTerms | None = None
) -> tuple[str, Params]:
    """Return the keyword leg's SQL: BM25 given term statistics, else ``ts_rank``."""
    if terms is None:
        return ts_rank_query(leg, prefix)
    return bm25_query(leg, terms[0], terms[1], prefix)


def ts_rank_query(leg: KeywordLeg, prefix: str = "") -> tuple[str, Params]:
    """Rank segments that contain any word of the query by ``ts_rank``.

    Used before the store has term statistics. Normalisation 1 divides the
    rank by 1 + log(document length), so long segments do not win by size
    alone. Ties break by ref, so the order is the same on every run.
    """
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


def quote_lexeme(lexeme: str) -> str:
    """Return ``lexeme`` as a one-operand ``tsquery`` literal."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def selecting_terms(terms: Sequence[Term], budget: int) -> list[Term]:
    """Return the rarest terms whose document counts add up to at most ``budget``.

    The rarest term is always kept, whatever its count. Ties break by lexeme.
    """
    chosen: list[Term] = []
    total = 0
    for term in sorted(terms, key=lambda t: (t.documents, t.lexeme)):
        if chosen and total + term.documents > budget:
            break
        chosen.append(term)
        total += term.documents
    return chosen


def bm25_query(
    leg: KeywordLeg, totals: Totals, terms: Sequence[Term], prefix: str = ""
) -> tuple[str, Params]:
    """Rank segments that contain a lexeme of the query by Okapi BM25.

    A segment's length is its number of distinct lexemes, and a lexeme's
    term frequency its number of positions in the segment (PostgreSQL keeps
    at most 256). Work is bounded in three steps:

    1. The rarest lexemes (``selecting_terms``) select at most
       ``MAX_SCANNED`` rows through the GIN index.
    2. Each row is scored as if every lexeme it contains occurred once,
       which needs one lookup per lexeme and no expansion of the vector.
    3. The best ``RESCORED_FACTOR * k`` rows are scored again with their
       real term frequencies, and the best k are returned.
    """
    if not terms:
        return (
            "SELECT NULL::text AS ref, NULL::float8 AS score, "
            "NULL::bigint AS rank WHERE false",
            {},
        )
    p = prefix
    params: Params = {
        f"{p}match": " | ".join(
            quote_lexeme(t.lexeme) for t in selecting_terms(terms, SELECTING_DOCUMENTS)
        ),
        f"{p}lexemes": [t.lexeme for t in terms],
        f"{p}idfs": [totals.idf(t.documents) for t in terms],
        f"{p}scanned": MAX_SCANNED,
        f"{p}rescored": RESCORED_FACTOR * leg.k,
        f"{p}k": leg.k,
        f"{p}k1": BM25_K1,
        f"{p}b": BM25_B,
        f"{p}average": max(totals.average_length, 1.0),
    }
    matched: list[str] = []
    for index, term in enumerate(terms):
        params[f"{p}q{index}"] = quote_lexeme(term.lexeme)
        params[f"{p}i{index}"] = totals.idf(term.documents)
        matched.append(
            f"CASE WHEN s.search_vector @@ %({p}q{index})s::tsquery "
            f"THEN %({p}i{index})s::float8 ELSE 0.0 END"
        )
    where = filter_clause("s", leg.filters, p, params)
    k1 = f"%({p}k1)s::float8"
    sql = f"""
        SELECT ref, score, row_number() OVER (ORDER BY score DESC, ref) AS rank
        FROM (
            SELECT c.ref, (
                SELECT sum(t.idf * u.tf * ({k1} + 1.0) / (u.tf + c.norm))
                FROM (
                    SELECT lexeme,
                        coalesce(array_length(positions, 1), 1)::float8 AS tf
                    FROM unnest(c.search_vector)
                ) AS u
                JOIN unnest(%({p}lexemes)s::text[], %({p}idfs)s::float8[])
                    AS t(lexeme, idf) ON t.lexeme = u.lexeme
            ) AS score
            FROM (
                SELECT s.ref, s.search_vector, s.norm,
                    ({" + ".join(matched)}) * ({k1} + 1.0) / (1.0 + s.norm)
                        AS single
                FROM (
                    SELECT s.ref, s.search_vector,
                        {k1} * (1.0 - %({p}b)s::float8 + %({p}b)s::float8
                            * length(s.search_vector) / %({p}average)s::float8)
                            AS norm
                    FROM retrieval_segments AS s
                    WHERE s.search_vector @@ %({p}match)s::tsquery{where}
                    LIMIT %({p}scanned)s
                ) AS s
                ORDER BY single DESC, s.ref
                LIMIT %({p}rescored)s
            ) AS c
            ORDER BY score DESC, c.ref
            LIMIT %({p}k)s
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


def leg_query(
    leg: Leg, prefix: str = "", terms: LegTerms | None = None
) -> tuple[str, Params]:
    if isinstance(leg, KeywordLeg):
        return keyword_query(leg, prefix, terms)
    return dense_query(leg, prefix)


def fusion_query(
    legs: Sequence[Leg], k: int, terms: Mapping[int, LegTerms] | None = None
) -> tuple[str, Params]:
    """Run every leg as a CTE and fuse their ranks by reciprocal rank fusion.

    The result matches ``retrieval.hybrid.reciprocal_rank_fusion`` exactly:
    the sum adds each ref's terms in leg order (floating-point addition is
    not associative), scores below zero count as zero, and equal sums keep
    the order in which the legs first listed the refs. ``terms`` maps the
    index of a keyword leg to its term statistics (BM25); a keyword leg
    without them is ranked by ``ts_rank``.
    """
    params: Params = {"rrf_k": k}
    ctes: list[str] = []
    unions: list[str] = []
    for index, leg in enumerate(legs):
        sql, leg_params = leg_query(
            leg, prefix=f"l{index}_", terms=(terms or {}).get(index)
        )
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
