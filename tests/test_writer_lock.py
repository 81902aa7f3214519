"""The single-writer lock of a data folder, across real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torah_study.config import Settings
from torah_study.ingest import ingest
from torah_study.writer_lock import LOCK_FILE, WriterLockError, writer_lock

REPO = Path(__file__).resolve().parent.parent

HOLD_LOCK = """
import sys, time
from pathlib import Path
from torah_study.writer_lock import writer_lock
with writer_lock(Path(sys.argv[1]), "ingest"):
    print("locked", flush=True)
    time.sleep(120)
"""


def _hold_in_process(data_dir: Path) -> subprocess.Popen[str]:
    """Start a process that takes the lock and sleeps; return once it holds it."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_writer_in_process_rejected(tmp_path: Path) -> None:
    with writer_lock(tmp_path, "ingest"):
        rejected = pytest.raises(WriterLockError)
        with rejected as caught, writer_lock(tmp_path, "ingest"):
            pass
    message = str(caught.value)
    assert str(tmp_path) in message
    assert f"process {os.getpid()}" in message
    # Released on leaving the block.
    with writer_lock(tmp_path, "ingest"):
        pass


def test_lock_file_names_holder(tmp_path: Path) -> None:
    with writer_lock(tmp_path, "ingest"):
        holder = json.loads((tmp_path / LOCK_FILE).read_text(encoding="utf-8"))
    assert holder["pid"] == os.getpid()
    assert holder["purpose"] == "ingest"


def test_killed_holder_releases_lock(tmp_path: Path) -> None:
    holder = _hold_in_process(tmp_path)
    try:
        rejected = pytest.raises(WriterLockError, match=f"process {holder.pid}")
        with rejected, writer_lock(tmp_path, "ingest"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    deadline = time.time() + 10
    while True:
        try:
            with writer_lock(tmp_path, "ingest"):
                break
        except WriterLockError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.corpus
def test_ingest_rejected_while_locked(export_dir: Path, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        books=("Pirkei Avot",),
        _env_file=None,  # type: ignore[call-arg]
    )
    holder = _hold_in_process(settings.data_dir)
    try:
        with pytest.raises(WriterLockError, match="Another process is writing"):
            ingest(settings, export_dir, show_progress=False)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # Nothing was written by the rejected ingest.
    assert not settings.catalog_path.exists()
    assert not settings.index_dir.exists()
