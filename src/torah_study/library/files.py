"""Atomic replacement of the files beside the index.

Serving processes reload ``catalog.json``, ``lexicon.json`` and the other
files of the data folder while an ingest rewrites them. Each file is written
to a temporary file in the same folder, flushed to disk and renamed over the
old one. ``os.replace`` is atomic on POSIX file systems, so a reader opens
either the whole old file or the whole new one, never a partial write.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one rename.

    The temporary file gets a unique name in the same folder. A failed write
    removes it, and a killed writer leaves it as ``.<name>.*.tmp`` beside an
    intact ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file readable by the owner only, but service
        # processes may run as another user than the ingest.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
