"""One writer per data folder: an advisory ``flock`` on ``write.lock``.

LanceDB and the files beside the index support one writer and many readers.
Two ingests on one data folder would interleave their deletes and inserts and
overwrite each other's catalog, so every process that writes the library
takes this lock first, and a second writer is rejected at once. Serving
processes only read and never take it.

The kernel releases an ``flock`` when the last descriptor of the open file is
closed, which also happens when the holder is killed (even with SIGKILL), so
a crashed ingest never leaves the folder locked. The lock file itself stays
and is reused.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

LOCK_FILE = "write.lock"


class WriterLockError(RuntimeError):
    """Raised when another process is already writing to the data folder."""


@contextmanager
def writer_lock(data_dir: Path, purpose: str) -> Iterator[None]:
    """Hold the data folder's write lock for the ``with`` block.

    ``purpose`` (such as "ingest") is recorded in the lock file with the
    process id, so a rejected writer can say who holds the lock. Raises
    WriterLockError when another process (or another open of the lock file in
    this process) holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    handle = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(handle)
            raise WriterLockError(
                f"Another process is writing to {data_dir} ({holder}); wait for "
                f"it to finish, or stop it, before starting another {purpose}."
            ) from None
        _record_holder(handle, purpose)
        yield
    finally:
        # Closing the file releases the lock.
        handle.close()


def _record_holder(handle: IO[str], purpose: str) -> None:
    handle.seek(0)
    handle.truncate()
    holder = {
        "pid": os.getpid(),
        "purpose": purpose,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
    }
    handle.write(json.dumps(holder))
    handle.flush()


def _describe_holder(handle: IO[str]) -> str:
    """Return "ingest, process 123, started …" from the lock file, if readable."""
    handle.seek(0)
    try:
        holder = json.loads(handle.read())
        return (
            f"{holder['purpose']}, process {holder['pid']}, started {holder['started']}"
        )
    except (ValueError, KeyError, TypeError):
        # The holder may be between truncating and writing the file.
        return "holder unknown"
