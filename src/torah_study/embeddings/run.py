"""The ``embed`` and ``embeddings`` commands: open the library and run a job.

Each function prints its result and returns the process exit status.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torah_study.config import Settings
from torah_study.embeddings import build_embeddings
from torah_study.embeddings.base import EmbeddingError, Embeddings
from torah_study.embeddings.parquet import export_texts, export_vectors, import_vectors
from torah_study.embeddings.scope import ScopeError, check_scope
from torah_study.embeddings.stage import embed_configured_scope
from torah_study.index.base import SegmentStore, StoreError
from torah_study.index.factory import open_store
from torah_study.library.catalog import Catalog
from torah_study.writer_lock import WriterLockError, writer_lock


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _open(settings: Settings) -> tuple[Catalog, SegmentStore, Embeddings]:
    if not settings.catalog_path.exists():
        raise EmbeddingError(
            f"No library in {settings.data_dir}: run `torah-study ingest` first."
        )
    catalog = Catalog.load(settings.catalog_path)
    embedder = build_embeddings(settings)
    try:
        store = open_store(settings, embedder.dimension)
    except StoreError as error:
        raise EmbeddingError(str(error)) from error
    return catalog, store, embedder


# Exit status of a run stopped by Ctrl-C or SIGTERM, as a shell reports SIGINT.
INTERRUPTED = 130


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into KeyboardInterrupt while the block runs.

    The run then stops the way Ctrl-C stops it: worker processes are shut
    down and the status file says "interrupted". Only the main thread may
    set signal handlers; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGINT gets the handler too: a process inherits ignored signals, and
    # Python installs its own SIGINT handler only when SIGINT is not ignored.
    previous: dict[int, Callable[[int, Any], Any] | int | None] = {
        number: signal.signal(number, interrupt)
        for number in (signal.SIGTERM, signal.SIGINT)
    }
    # A process inherits its parent's blocked signals, and a blocked SIGTERM
    # would wait until the run ends, so it is unblocked while the block runs.
    blocked = signal.pthread_sigmask(
        signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT}
    )
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for number, handler in previous.items():
            signal.signal(number, handler)


def run_embed(settings: Settings, *, quiet: bool = False) -> int:
    """Embed the dense scope batch by batch, printing progress with rate and ETA.

    Ctrl-C or SIGTERM stops the run with status 130 and keeps the vectors
    stored so far.
    """
    try:
        with _terminate_as_interrupt(), writer_lock(settings.data_dir, "embed"):
            return _run_embed(settings, quiet=quiet)
    except WriterLockError as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        print(
            "embedding interrupted: the vectors stored so far are kept; run "
            "`torah-study embed` again to continue.",
            file=sys.stderr,
        )
        return INTERRUPTED


def _run_embed(settings: Settings, *, quiet: bool) -> int:
    scope = list(settings.dense_scope)
    try:
        catalog, store, embedder = _open(settings)
        check_scope(scope, catalog)
    except (EmbeddingError, ScopeError) as error:
        return _fail(str(error))
    try:
        _, written = embed_configured_scope(
            store,
            catalog,
            embedder,
            settings,
            announce=lambda line: print(line, flush=True),
            report=None if quiet else (lambda line: print(line, flush=True)),
        )
    except EmbeddingError as error:
        return _fail(
            f"{error} Vectors stored before the error are kept; run "
            "`torah-study embed` again to continue."
        )
    if written:
        store.optimize_vectors()
    print(f"vectors: {store.vector_count()} ({written} embedded now)")
    return 0


def run_import(settings: Settings, path: Path) -> int:
    """Import a Parquet vector file and print what was stored and skipped."""
    try:
        with writer_lock(settings.data_dir, "import"):
            return _run_import(settings, path)
    except WriterLockError as error:
        return _fail(str(error))


def _run_import(settings: Settings, path: Path) -> int:
    try:
        _, store, embedder = _open(settings)
        report = import_vectors(path, store, embedder)
    except EmbeddingError as error:
        return _fail(str(error))
    if report.stored:
        store.optimize_vectors()
    print(report.summary())
    return 0


def _unwritable(path: Path) -> str | None:
    """Say why ``path`` cannot be written as a new file, or None when it can."""
    if path.is_dir():
        return f"cannot write {path}: it is a folder."
    if not path.parent.is_dir():
        return f"cannot write {path}: its folder {path.parent} does not exist."
    return None


def run_export(settings: Settings, path: Path, books: Sequence[str] | None) -> int:
    """Write the stored, current vectors to a Parquet file."""
    problem = _unwritable(path)
    if problem is not None:
        return _fail(problem)
    try:
        catalog, store, embedder = _open(settings)
    except EmbeddingError as error:
        return _fail(str(error))
    unknown = [title for title in books or () if title not in catalog]
    if unknown:
        return _fail(f"unknown book title(s): {', '.join(unknown)}")
    try:
        report = export_vectors(path, store, catalog, embedder, books)
    except EmbeddingError as error:
        return _fail(str(error))
    print(f"rows written: {report.rows} ({report.stale} stale vectors left out)")
    print(f"file: {path}")
    return 0


def run_texts(
    settings: Settings,
    path: Path,
    scope: Sequence[str] | None,
    *,
    pending_only: bool,
) -> int:
    """Write the passage texts of the dense scope for embedding elsewhere."""
    names = list(scope if scope is not None else settings.dense_scope)
    problem = _unwritable(path)
    if problem is not None:
        return _fail(problem)
    try:
        catalog, store, embedder = _open(settings)
        check_scope(names, catalog)
    except (EmbeddingError, ScopeError) as error:
        return _fail(str(error))
    try:
        rows = export_texts(
            path, store, catalog, embedder, names, pending_only=pending_only
        )
    except EmbeddingError as error:
        return _fail(str(error))
    print(f"rows written: {rows} (texts for {embedder.name})")
    print(f"file: {path}")
    return 0
