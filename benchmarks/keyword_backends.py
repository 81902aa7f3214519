"""Compare the keyword leg of the LanceDB and PostgreSQL stores on one library.

    python benchmarks/keyword_backends.py --data-dir DIR --database-url URL \\
        --questions eval/questions.jsonl [--k 20]

DIR is an ingested library and URL a PostgreSQL database whose retrieval
tables hold the same library (ingest it with ``--backend postgres``). For
every answerable question whose gold refs are in the library, the script
runs the question's keyword query (normalised terms with prefix variants,
as the retriever sends it) and counts how often a gold ref is in the top k:

- ``lance``: BM25 over the normalised ``search`` column;
- ``postgres-search``: the PostgreSQL store (``ts_rank`` over ``search``
  read through the Hebrew configuration);
- ``postgres-raw``: ``ts_rank`` over the raw title, Hebrew and English text
  read through the same configuration, with the same query.

It prints a JSON report with the hit counts (all questions and Hebrew
ones) and the median query time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from torah_study.config import Settings, libpq_url
from torah_study.index.base import Filters
from torah_study.index.lance import LanceStore
from torah_study.index.pg_search import CONFIGURATION
from torah_study.index.postgres import PostgresStore
from torah_study.library.catalog import Catalog
from torah_study.retrieval.query import content_terms, keyword_query

RAW_TABLE = "keyword_bench_raw"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--k", type=int, default=20, help="hits per query (default 20)")
    return parser.parse_args()


def build_raw_table(url: str, catalog: Catalog) -> None:
    """Write a scratch table with tsvectors of the raw texts (dropped and rebuilt)."""
    titles = [(b.title, f"{b.title} {b.he_title}") for b in catalog.books.values()]
    with psycopg.connect(url) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        connection.execute("CREATE TEMP TABLE titles (book text, words text)")
        with connection.cursor().copy("COPY titles FROM STDIN") as copy:
            for row in titles:
                copy.write_row(row)
        connection.execute(
            f"""CREATE TABLE {RAW_TABLE} AS
            SELECT s.ref, to_tsvector('{CONFIGURATION}',
                coalesce(t.words, '') || ' ' || s.he || ' ' || s.en) AS raw_vector
            FROM retrieval_segments AS s LEFT JOIN titles AS t USING (book)"""
        )
        connection.execute(f"CREATE INDEX ON {RAW_TABLE} USING gin (raw_vector)")
        connection.execute(f"ANALYZE {RAW_TABLE}")
        connection.commit()


def raw_search(url: str) -> Callable[[str, int], list[str]]:
    connection = psycopg.connect(url, autocommit=True)

    def search(question: str, k: int) -> list[str]:
        words = list(dict.fromkeys(question.split()))
        rows = connection.execute(
            f"""SELECT r.ref FROM {RAW_TABLE} AS r, (
                SELECT retrieval_any_word(plainto_tsquery('{CONFIGURATION}', w)) AS q
                FROM unnest(%s::text[]) AS w) AS query
            WHERE r.raw_vector @@ query.q
            ORDER BY ts_rank(r.raw_vector, query.q, 1) DESC, r.ref LIMIT %s""",
            (words, k),
        ).fetchall()
        return [str(row[0]) for row in rows]

    return search


def main() -> int:
    args = parse_args()
    settings = Settings(data_dir=args.data_dir)
    catalog = Catalog.load(settings.catalog_path)
    url = libpq_url(args.database_url)
    lance = LanceStore(settings.index_dir)
    postgres = PostgresStore(url, dimension=lance.dimension)
    books = set(lance.books())

    rows = [json.loads(line) for line in args.questions.read_text().splitlines()]
    questions = [
        row
        for row in rows
        if row.get("kind") == "answerable"
        and any(ref.rsplit(" ", 1)[0] in books for ref in row["gold_refs"])
    ]

    build_raw_table(url, catalog)
    raw = raw_search(url)
    legs: dict[str, Callable[[dict[str, Any]], list[str]]] = {
        "lance": lambda row: [
            h.ref for h in lance.keyword(_query(row), args.k, Filters())
        ],
        "postgres-search": lambda row: [
            h.ref for h in postgres.keyword(_query(row), args.k, Filters())
        ],
        "postgres-raw": lambda row: raw(_query(row), args.k),
    }

    report: dict[str, Any] = {
        "questions": len(questions),
        "hebrew_questions": sum(row.get("lang") == "he" for row in questions),
        "k": args.k,
        "legs": {},
    }
    for name, search in legs.items():
        hits = hebrew_hits = 0
        seconds: list[float] = []
        for row in questions:
            started = time.perf_counter()
            refs = search(row)
            seconds.append(time.perf_counter() - started)
            found = bool(set(row["gold_refs"]) & set(refs))
            hits += found
            hebrew_hits += found and row.get("lang") == "he"
        report["legs"][name] = {
            "gold_in_top_k": hits,
            "hebrew_gold_in_top_k": hebrew_hits,
            "median_ms": round(1000 * statistics.median(seconds), 2),
        }
    postgres.close()
    print(json.dumps(report, indent=2))
    return 0


def _query(row: dict[str, Any]) -> str:
    return keyword_query(content_terms(row["question"]))


if __name__ == "__main__":
    raise SystemExit(main())
