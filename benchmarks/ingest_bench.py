"""Time a fresh ingest of a Sefaria-Export and report each stage.

Usage:
    TORAH_STUDY_EXPORT_DIR=/path/to/Sefaria-Export \\
        python benchmarks/ingest_bench.py --output ingest.json [--data-dir DIR --keep]

The ingest uses the default books (all), dense scope and embedding provider
(e5) even when the environment sets others, so runs on different machines
compare. The other settings, such as TORAH_STUDY_EMBEDDING_WORKERS, come
from the environment as usual and are recorded in the output.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lancedb
from bench_common import disk_usage, machine_info, require_export_dir, write_json

from torah_study.config import DEFAULT_DENSE_SCOPE, Settings
from torah_study.ingest import ingest


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="new or empty folder to ingest into (default: a new temporary folder)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the data folder, to run query_bench.py and engine_compare.py on it",
    )
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    parser.add_argument(
        "--progress", action="store_true", help="show the ingest progress bars"
    )
    return parser.parse_args()


def prepare_data_dir(requested: Path | None) -> Path:
    """Return an empty data folder, or exit when the requested one contains files."""
    if requested is None:
        return Path(tempfile.mkdtemp(prefix="torah-study-bench-"))
    if requested.exists() and any(requested.iterdir()):
        sys.exit(
            f"error: {requested} is not empty: a fresh ingest needs a new or empty "
            "folder, so remove it or choose another --data-dir."
        )
    requested.mkdir(parents=True, exist_ok=True)
    return requested


def index_sizes(index_dir: Path) -> dict[str, Any]:
    """Report the bytes on disk per table and the size of each index.

    ``du`` also counts deletion files, manifests and the files of older table
    versions that LanceDB keeps until a cleanup. ``current_version_bytes`` is
    LanceDB's own count of the data and index files of the current version.
    """
    db = lancedb.connect(str(index_dir))
    tables: dict[str, Any] = {}
    for name in db.list_tables().tables:
        table = db.open_table(name)
        # The sync API returns a dict, though the type hint names a dataclass.
        stats: Any = table.stats()
        tables[name] = {
            "rows": table.count_rows(),
            "disk_bytes": disk_usage(index_dir / f"{name}.lance"),
            "current_version_bytes": stats["total_bytes"],
            "indexes": {
                index.name: {"type": index.index_type, "bytes": index.size_bytes}
                for index in table.list_indices()
            },
        }
    return {"disk_bytes": disk_usage(index_dir), "tables": tables}


def stage_report(report: Any) -> dict[str, Any]:
    seconds = report.seconds
    parse_write = seconds.get("parse+write", 0.0)
    embed = seconds.get("embed", 0.0)
    return {
        "read": {"seconds": round(seconds.get("read", 0.0), 2), "files": report.files},
        "parse+write": {
            "seconds": round(parse_write, 2),
            "segments_per_second": round(report.segments_written / parse_write, 1)
            if parse_write
            else None,
        },
        "embed": {
            "seconds": round(embed, 2),
            "vectors_per_second": round(report.vectors_written / embed, 2)
            if embed
            else None,
        },
        "index": {"seconds": round(seconds.get("index", 0.0), 2)},
    }


def main() -> int:
    args = parse_args()
    export_dir = require_export_dir()
    data_dir = prepare_data_dir(args.data_dir)
    settings = Settings(
        data_dir=data_dir,
        export_dir=export_dir,
        books=(),
        dense_scope=DEFAULT_DENSE_SCOPE,
        embedding_provider="e5",
    )
    result: dict[str, Any] = {"machine": machine_info()}
    try:
        started = time.perf_counter()
        report = ingest(settings, export_dir, show_progress=args.progress)
        wall = time.perf_counter() - started
        # Read before ``du`` runs: a forked child counts its parent's pages.
        # ru_maxrss is in KiB on Linux, and the children are the embedding workers.
        peak_rss = {
            "main": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "largest_child": round(
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
            ),
        }
        if report.corrupt:
            print(
                f"warning: {len(report.corrupt)} corrupt files skipped", file=sys.stderr
            )
        result.update(
            {
                "export_dir": str(export_dir),
                "data_dir": str(data_dir),
                "settings": {
                    "dense_scope": list(settings.dense_scope),
                    "embedding_workers": settings.embedding_workers,
                    "embedding_batch_size": settings.embedding_batch_size,
                },
                "files": report.files,
                "corrupt_files": len(report.corrupt),
                "books": report.books,
                "segments": report.segments,
                "segments_written": report.segments_written,
                "vectors": report.vectors_total,
                "vectors_written": report.vectors_written,
                "wall_seconds": round(wall, 2),
                "stages": stage_report(report),
                "index_size": index_sizes(settings.index_dir),
                "peak_rss_mib": peak_rss,
                "kept": args.keep,
            }
        )
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    write_json(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
