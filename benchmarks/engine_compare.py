"""Compare LanceDB full-text search with SQLite FTS5 on the same keyword index.

Usage:
    python benchmarks/engine_compare.py --data-dir DIR \\
        [--questions questions.jsonl] [--output engines.json]

Both engines index the same rows: the ``ref`` and ``search`` columns of the
``segments`` table in DIR, which ingestion already normalised (niqqud removed,
Hebrew prefixes split off). LanceDB gets a new table with an FTS index built
with the tokenizer settings of the index in DIR. SQLite gets an FTS5 table per
``--fts5-tokenizer``. Every engine then runs the same keyword queries, built by
``analyze`` and ``keyword_query`` as retrieval builds them, with the same k,
once as a warm-up and ``--repeats`` more times.

The engines do not rank identically: the default LanceDB index stems English
words and drops English stop words, and FTS5 with ``unicode61`` does neither,
so the porter variant is included to show how much stemming accounts for.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
from bench_common import (
    benchmark_queries,
    disk_usage,
    latency_summary,
    machine_info,
    write_json,
)
from lancedb.index import FTS

from torah_study.library.catalog import Catalog
from torah_study.retrieval.query import analyze, keyword_query

DEFAULT_TOKENIZERS = (
    "unicode61 remove_diacritics 2",
    "porter unicode61 remove_diacritics 2",
)
# FTS index settings copied from the index in the data folder, so the rebuilt
# LanceDB index tokenises exactly as the product's does.
_FTS_SETTINGS = (
    "base_tokenizer",
    "language",
    "with_position",
    "max_token_length",
    "lower_case",
    "stem",
    "remove_stop_words",
    "ascii_folding",
)
SearchFunction = Callable[[str, int], list[str]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="data folder of an ingested library",
    )
    parser.add_argument(
        "--questions",
        type=Path,
        help="JSONL file whose 'question' fields are added before the built-in queries",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="folder for the rebuilt indexes (default: a new temporary folder)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the rebuilt indexes afterwards"
    )
    parser.add_argument(
        "--k", type=int, default=30, help="results per query (default 30, as keyword_k)"
    )
    parser.add_argument(
        "--overlap-at",
        type=int,
        default=10,
        help="compare the first N results of each engine (default 10)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed passes after the warm-up (default 3)",
    )
    parser.add_argument(
        "--fts5-tokenizer",
        action="append",
        help=(
            "FTS5 tokenize= argument; repeat for several "
            f"(default: {' and '.join(repr(t) for t in DEFAULT_TOKENIZERS)})"
        ),
    )
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    return parser.parse_args()


def cpu_seconds() -> float:
    """Return the user plus system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timer:
    """Measure the wall and CPU seconds of a block.

    CPU time above wall time means the block ran on several threads.
    """

    def __enter__(self) -> Timer:
        self.wall_start = time.perf_counter()
        self.cpu_start = cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall_start
        self.cpu = cpu_seconds() - self.cpu_start

    def as_dict(self) -> dict[str, float]:
        return {"wall_s": round(self.wall, 2), "cpu_s": round(self.cpu, 2)}


def read_rows(data_dir: Path) -> tuple[pa.Table, dict[str, Any]]:
    """Return the ``ref`` and ``search`` columns and the FTS settings of DIR."""
    table = lancedb.connect(str(data_dir / "index")).open_table("segments")
    rows = table.search().select(["ref", "search"]).limit(None).to_arrow()
    details: dict[str, Any] | None = None
    for index in table.list_indices():
        if index.index_type == "FTS" and index.columns == ["search"]:
            details = index.index_details
    if details is None:
        sys.exit(
            f"error: {data_dir} has no FTS index on segments.search; ingest first."
        )
    return rows, {name: details[name] for name in _FTS_SETTINGS if name in details}


def build_lancedb(
    rows: pa.Table, folder: Path, fts_settings: dict[str, Any]
) -> tuple[dict[str, Any], SearchFunction]:
    db = lancedb.connect(str(folder))
    with Timer() as write:
        table = db.create_table("segments", data=rows)
    with Timer() as index:
        table.create_index("search", config=FTS(**fts_settings))
    fts_bytes = next(
        i.size_bytes for i in table.list_indices() if i.index_type == "FTS"
    )

    def search(query: str, k: int) -> list[str]:
        hits = (
            table.search(query, query_type="fts", fts_columns="search")
            .select(["ref", "_score"])
            .limit(k)
            .to_list()
        )
        return [hit["ref"] for hit in hits]

    build = {
        "engine": "LanceDB FTS",
        "settings": fts_settings,
        "write": write.as_dict(),
        "index": index.as_dict(),
        "build_wall_s": round(write.wall + index.wall, 2),
        "index_bytes": fts_bytes,
        "disk_bytes_with_text": disk_usage(folder),
    }
    return build, search


def fts5_match(query: str) -> str:
    """Quote each term and join them with OR, as LanceDB's default match does."""
    terms = ['"' + term.replace('"', '""') + '"' for term in query.split()]
    return " OR ".join(terms)


def build_sqlite(
    rows: pa.Table, path: Path, tokenizer: str
) -> tuple[dict[str, Any], SearchFunction]:
    connection = sqlite3.connect(path)
    # A bulk load that can be redone from the source: no journal, no fsync.
    connection.execute("PRAGMA journal_mode = OFF")
    connection.execute("PRAGMA synchronous = OFF")
    tokenize = tokenizer.replace("'", "''")
    connection.execute(
        "CREATE VIRTUAL TABLE segments USING "
        f"fts5(ref UNINDEXED, search, tokenize = '{tokenize}')"
    )
    refs = rows["ref"].to_pylist()
    texts = rows["search"].to_pylist()
    with Timer() as write, connection:
        connection.executemany(
            "INSERT INTO segments (ref, search) VALUES (?, ?)",
            zip(refs, texts, strict=True),
        )
    with Timer() as optimize, connection:
        connection.execute("INSERT INTO segments (segments) VALUES ('optimize')")
    connection.execute("VACUUM")
    sizes = dict(
        connection.execute(
            "SELECT name, SUM(pgsize) FROM dbstat WHERE name LIKE 'segments%' "
            "GROUP BY name"
        ).fetchall()
    )
    content_bytes = sizes.pop("segments_content", 0)
    sizes.pop("segments", None)

    def search(query: str, k: int) -> list[str]:
        cursor = connection.execute(
            "SELECT ref FROM segments WHERE segments MATCH ? ORDER BY rank LIMIT ?",
            (fts5_match(query), k),
        )
        return [row[0] for row in cursor]

    build = {
        "engine": "SQLite FTS5",
        "tokenizer": tokenizer,
        "write": write.as_dict(),
        "index": optimize.as_dict(),
        "build_wall_s": round(write.wall + optimize.wall, 2),
        # The inverted index, the document sizes BM25 needs and the config, without
        # the stored text.
        "index_bytes": int(sum(sizes.values())),
        "shadow_table_bytes": {**sizes, "segments_content": content_bytes},
        "disk_bytes_with_text": path.stat().st_size,
    }
    return build, search


def time_queries(
    search: SearchFunction, queries: list[str], k: int, repeats: int
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Run every query once to warm up, then time ``repeats`` more passes.

    Return the latency summary and the ranked refs of the warm-up pass.
    """
    results = {query: search(query, k) for query in queries}
    seconds: list[float] = []
    for _ in range(repeats):
        for query in queries:
            started = time.perf_counter()
            search(query, k)
            seconds.append(time.perf_counter() - started)
    return latency_summary(seconds), results


def overlap(
    first: dict[str, list[str]], second: dict[str, list[str]], top: int
) -> dict[str, Any]:
    """Share of the first ``top`` refs that both engines return, per query and mean.

    The denominator is ``top``, or fewer when neither engine found that many.
    """
    shares: dict[str, float] = {}
    for query, refs in first.items():
        a, b = refs[:top], second[query][:top]
        size = max(len(a), len(b))
        shares[query] = len(set(a) & set(b)) / size if size else 1.0
    values = list(shares.values())
    return {
        "mean": round(sum(values) / len(values), 3) if values else None,
        "min": round(min(values), 3) if values else None,
        "queries_identical": sum(1 for v in values if v == 1.0),
        "per_query": {q: round(v, 3) for q, v in shares.items()},
    }


def main() -> int:
    args = parse_args()
    if args.repeats < 1 or args.k < 1 or args.overlap_at < 1:
        sys.exit("error: --repeats, --k and --overlap-at must be at least 1.")
    if not (args.data_dir / "catalog.json").is_file():
        sys.exit(f"error: {args.data_dir} has no catalog.json; ingest a library first.")
    tokenizers = args.fts5_tokenizer or list(DEFAULT_TOKENIZERS)
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="torah-study-engines-"))
    work_dir.mkdir(parents=True, exist_ok=True)

    catalog = Catalog.load(args.data_dir / "catalog.json")
    queries: list[str] = []
    for question in benchmark_queries(args.questions):
        query = keyword_query(analyze(question, catalog).terms)
        if query.strip() and query not in queries:
            queries.append(query)

    result: dict[str, Any] = {
        "machine": machine_info(),
        "data_dir": str(args.data_dir),
        "k": args.k,
        "overlap_at": args.overlap_at,
        "repeats": args.repeats,
        "queries": queries,
    }
    try:
        with Timer() as reading:
            rows, fts_settings = read_rows(args.data_dir)
        result["rows"] = rows.num_rows
        result["read_rows"] = reading.as_dict()

        engines: list[tuple[str, dict[str, Any], SearchFunction]] = []
        build, search = build_lancedb(rows, work_dir / "lancedb", fts_settings)
        engines.append(("lancedb", build, search))
        for number, tokenizer in enumerate(tokenizers):
            build, search = build_sqlite(
                rows, work_dir / f"fts5-{number}.db", tokenizer
            )
            engines.append((f"fts5 {tokenizer}", build, search))
            print(f"built {build['engine']} {tokenizer}", file=sys.stderr)

        rankings: dict[str, dict[str, list[str]]] = {}
        result["engines"] = {}
        for name, build, search in engines:
            latency, rankings[name] = time_queries(
                search, queries, args.k, args.repeats
            )
            empty = sum(1 for refs in rankings[name].values() if not refs)
            result["engines"][name] = {
                **build,
                "query": latency,
                "queries_without_results": empty,
            }
        result["overlap_with_lancedb"] = {
            name: overlap(rankings["lancedb"], rankings[name], args.overlap_at)
            for name in rankings
            if name != "lancedb"
        }
    finally:
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    write_json(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
