"""Ingestion of damaged corpus files, and of a run killed part way.

Each test copies real files of the export given by TORAH_STUDY_EXPORT_DIR
into its tmp folder and damages the copies there, so the text is real and
the export itself is never written.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from torah_study.config import Settings
from torah_study.index.factory import open_store
from torah_study.ingest import STATE_FILE, ingest
from torah_study.library.export import read_text_file, walk_text

pytestmark = pytest.mark.corpus

AVOT = "json/Mishnah/Seder Nezikin/Pirkei Avot"
BERAKHOT = "json/Mishnah/Seder Zeraim/Mishnah Berakhot"
PEAH = "json/Mishnah/Seder Zeraim/Mishnah Peah"
DEMAI = "json/Mishnah/Seder Zeraim/Mishnah Demai"
# The dump's book, which the export copy lacks.
KILAYIM_ENGLISH = "json/Mishnah/Seder Zeraim/Mishnah Kilayim/English/merged.json"


class LetterEmbeddings:
    """A real but tiny embedding provider: counts of eight letters."""

    name = "letters"
    dimension = 8

    def _embed(self, texts: list[str]):  # type: ignore[no-untyped-def]
        import numpy as np

        rows = [[text.count(c) + 1 for c in "aeiouלמנ"] for text in texts]
        matrix = np.asarray(rows, dtype=np.float32)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    def embed_queries(self, texts):  # type: ignore[no-untyped-def]
        return self._embed(list(texts))

    def embed_passages(self, texts):  # type: ignore[no-untyped-def]
        return self._embed(list(texts))


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        dense_scope=("Pirkei Avot",),
        embedding_workers=1,
        _env_file=None,  # type: ignore[call-arg]
    )


def _copy(export_dir: Path, root: Path, *folders: str) -> None:
    for relative in folders:
        shutil.copytree(export_dir / relative, root / relative)
    shutil.copytree(export_dir / "schemas", root / "schemas")


def _dump_lines(export_dir: Path, relative: str) -> list[str]:
    """Return dump lines (JSON Lines) containing the segments of a real file."""
    file = read_text_file(export_dir / relative)
    lines = []
    for position, text in walk_text(file.text):
        if not text.strip():
            continue
        ref = f"{file.title} {':'.join(str(p) for p in position)}"
        metadata = {
            "ref": ref,
            "lang": file.language,
            "versionTitle": file.version_title,
            "docCategory": file.categories[0],
        }
        lines.append(json.dumps({"text": text, "metadata": metadata}))
    return lines


def _link_rows(export_dir: Path, count: int) -> tuple[list[str], list[list[str]]]:
    """Return the header and the first ``count`` complete rows of the links CSV."""
    (path,) = sorted((export_dir / "links").glob("*.csv"))
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for row, _ in zip(reader, range(count * 2), strict=False)]
    complete = [row for row in rows if row[0] and row[1]][:count]
    assert len(complete) == count
    return header, complete


def test_damaged_files_are_reported_and_skipped(
    export_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "export"
    _copy(export_dir, root, AVOT, BERAKHOT, PEAH, DEMAI)

    # Half of a real file, as an interrupted download leaves it.
    truncated = root / PEAH / "Hebrew" / "merged.json"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    # A real Hebrew file saved as Windows-1255 instead of UTF-8.
    legacy = root / DEMAI / "Hebrew" / "merged.json"
    text = legacy.read_text(encoding="utf-8")
    legacy.write_bytes(text.encode("cp1255", errors="replace"))
    with pytest.raises(UnicodeDecodeError):
        legacy.read_bytes().decode("utf-8")

    # A dump whose third line was cut short.
    dump = tmp_path / "dump" / "kilayim.jsonl"
    dump.parent.mkdir()
    lines = _dump_lines(export_dir, KILAYIM_ENGLISH)
    lines[2] = lines[2][: len(lines[2]) // 2]
    dump.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")

    # A links CSV whose fourth data row (line 5) lost its columns.
    header, rows = _link_rows(export_dir, 6)
    rows[3] = rows[3][:1]
    links = tmp_path / "links.csv"
    with links.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)

    settings = _settings(tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        report = ingest(
            settings,
            root,
            dumps=[dump],
            links=[links],
            embeddings=LetterEmbeddings(),
            show_progress=False,
        )

    corrupt = dict(report.corrupt)
    assert sorted(corrupt) == sorted([str(truncated), str(legacy)])
    assert "invalid JSON" in corrupt[str(truncated)]
    assert "utf-8" in corrupt[str(legacy)]
    # The English halves of Peah and Demai are intact, so the books remain.
    assert report.books == 5
    assert [(path, line) for path, line, _ in report.dump.bad] == [(str(dump), 3)]
    assert "invalid JSON" in report.dump.bad[0][2]
    assert report.dump.staged == len(lines) - 1
    assert report.links_bad == 1
    assert f"{links} line 5" in caplog.text

    summary = report.summary()
    assert "2 corrupt, skipped" in summary
    assert "1 bad lines skipped" in summary
    assert "1 malformed rows" in summary
    assert f"corrupt file: {truncated}" in summary
    assert f"bad dump line: {dump}:3" in summary


INGEST_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[3])
    from test_ingest_faults import LetterEmbeddings, _settings
    from torah_study.ingest import ingest

    ingest(
        _settings(Path(sys.argv[1])),
        Path(sys.argv[2]),
        embeddings=LetterEmbeddings(),
        show_progress=False,
        embed=False,
    )
    """
)


def _start_ingest(data_dir: Path, export: Path) -> subprocess.Popen[bytes]:
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", INGEST_SCRIPT, str(data_dir), str(export), str(tests)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _books_written(data_dir: Path) -> int:
    try:
        state = json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    return len(state["books"])


def test_killed_ingest_resumes_without_duplicates(
    export_dir: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    seder = "json/Mishnah/Seder Zeraim"
    _copy(export_dir, export, seder)
    books = len(list((export / seder).iterdir()))

    clean_dir = tmp_path / "clean"
    clean = _start_ingest(clean_dir, export)
    assert clean.wait(timeout=600) == 0, clean.stderr.read() if clean.stderr else ""
    clean_store = open_store(_settings(clean_dir), 8)
    expected = clean_store.count()
    clean_store.close()
    assert _books_written(clean_dir) == books

    data_dir = tmp_path / "data"
    process = _start_ingest(data_dir, export)
    deadline = time.monotonic() + 600
    while _books_written(data_dir) < 2:
        assert process.poll() is None, "the ingest ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    killed_at = _books_written(data_dir)
    assert 2 <= killed_at < books

    report = ingest(
        _settings(data_dir),
        export,
        embeddings=LetterEmbeddings(),
        show_progress=False,
        embed=False,
    )
    assert report.books == books
    # Books stored before the kill are in the state file and are not written
    # again.
    assert report.books_skipped >= killed_at
    store = open_store(_settings(data_dir), 8)
    try:
        assert store.count() == expected
        for title in store.books():
            refs = [r.ref for r in store.span(title, "", "~", 1_000_000)]
            assert len(refs) == len(set(refs)), title
    finally:
        store.close()
