"""The embedding stage: vectors for the segments of the dense scope.

A segment is embedded only when its stored vector digest differs from
``vector_digest`` (new text, another model or a new embedding format), and
vectors are stored batch by batch. A re-run after an interruption therefore
continues where the last one stopped, and a killed run loses only the batches
in flight.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from torah_study.config import Settings
from torah_study.embeddings.base import (
    EmbeddingError,
    Embeddings,
    Vectors,
    unusable_rows,
)
from torah_study.embeddings.scope import books_in_scope
from torah_study.embeddings.status import EmbedProgress
from torah_study.index.base import SegmentRecord, SegmentStore
from torah_study.library.catalog import Catalog
from torah_study.retrieval.rerank import EMBED_CHARS, passage_text

logger = logging.getLogger(__name__)

# Part of every vector digest: raising it re-embeds everything in the dense scope.
EMBED_FORMAT = 3
# Vectors stored between two compactions of the vectors table: every batch
# adds a fragment, and many small fragments slow down dense search.
COMPACT_EVERY = 20_000
# Upper bound on the segments of one book read at once (Sefaria's longest
# books have a few tens of thousands).
MAX_BOOK_SEGMENTS = 1_000_000


def vector_digest(record: SegmentRecord, embedder_name: str) -> str:
    """Identify what a stored vector was computed from: format, model and text.

    A passage longer than the embedded cut is marked with the cut, so that
    changing it re-embeds the long passages and keeps the vectors of the rest.
    """
    digest = f"{EMBED_FORMAT}:{embedder_name}:{record.digest}"
    if len(record.en or record.he) > EMBED_CHARS:
        digest += f":cut{EMBED_CHARS}"
    return digest


@dataclass
class ScopePlan:
    """The books of the dense scope and how many of their segments need vectors."""

    segments: int = 0
    pending: dict[str, int] = field(default_factory=dict)

    @property
    def total_pending(self) -> int:
        return sum(self.pending.values())


def plan_scope(
    store: SegmentStore, catalog: Catalog, embedder_name: str, scope: Sequence[str]
) -> ScopePlan:
    """Count the segments in scope and those without a current vector.

    Vectors of refs that no longer exist in a scoped book are deleted here.
    TODO: vectors of books outside the scope (from an import or an earlier,
    wider scope) are neither checked nor deleted when their text changes.
    """
    plan = ScopePlan()
    for title in books_in_scope(catalog, scope):
        known = store.vector_digests(title)
        records = store.span(title, "", "~", limit=MAX_BOOK_SEGMENTS)
        current = {r.ref for r in records}
        stale = [ref for ref in known if ref not in current]
        if stale:
            store.delete_vectors(stale)
        plan.segments += len(records)
        pending = sum(
            1 for r in records if known.get(r.ref) != vector_digest(r, embedder_name)
        )
        if pending:
            plan.pending[title] = pending
    return plan


def embed_scope(
    store: SegmentStore,
    catalog: Catalog,
    embedder: Embeddings,
    scope: Sequence[str],
    *,
    batch_size: int,
    workers: int = 1,
    progress: EmbedProgress | None = None,
    plan: ScopePlan | None = None,
) -> int:
    """Embed the segments of the books in ``scope`` whose text changed.

    Returns the number of vectors written. Errors of the provider are recorded
    in ``progress`` and re-raised. The vectors stored before the error stay.
    """
    plan = plan or plan_scope(store, catalog, embedder.name, scope)
    if progress is not None:
        progress.start(plan.total_pending)
    written = 0
    compacted = 0
    try:
        batches = _batches(_pending_records(store, embedder.name, plan), batch_size)
        inline = plan.total_pending < 2 * batch_size
        for records, vectors in _embed_batches(batches, embedder, workers, inline):
            _check_vectors(embedder, records, vectors)
            digests = [vector_digest(r, embedder.name) for r in records]
            store.add_vectors(records, vectors, digests)
            written += len(records)
            if progress is not None:
                progress.advance(len(records))
            if written - compacted >= COMPACT_EVERY:
                store.optimize_vectors()
                compacted = written
    except (KeyboardInterrupt, SystemExit):
        if progress is not None:
            progress.interrupt()
        raise
    except Exception as error:
        if progress is not None:
            progress.fail(error)
        raise
    if progress is not None:
        progress.finish()
    return written


def _check_vectors(
    embedder: Embeddings, records: Sequence[SegmentRecord], vectors: Vectors
) -> None:
    """Raise EmbeddingError when the provider returned a vector that is unusable.

    A NaN, infinite or zero vector matches no question, and the stores
    refuse NaN, so the run stops with the ref instead of storing it.
    """
    matrix = np.asarray(vectors)
    if matrix.shape != (len(records), embedder.dimension):
        raise EmbeddingError(
            f"{embedder.name} returned vectors of shape {matrix.shape} for "
            f"{len(records)} passages of dimension {embedder.dimension}."
        )
    bad = unusable_rows(matrix)
    if bad:
        refs = ", ".join(records[i].ref for i in bad[:3])
        raise EmbeddingError(
            f"{embedder.name} returned {len(bad)} vector(s) with NaN, infinite "
            f"or only zero values, for {refs}; none of this batch was stored."
        )


def embed_configured_scope(
    store: SegmentStore,
    catalog: Catalog,
    embedder: Embeddings,
    settings: Settings,
    *,
    announce: Callable[[str], None],
    report: Callable[[str], None] | None,
) -> tuple[ScopePlan, int]:
    """Plan and embed ``settings.dense_scope`` with the settings' batch size.

    ``announce`` receives the size of the scope before embedding starts, and
    ``report`` the progress lines. Returns the plan and the vectors written.
    """
    scope = list(settings.dense_scope)
    plan = plan_scope(store, catalog, embedder.name, scope)
    books = f"{len(plan.pending)} book" + ("" if len(plan.pending) == 1 else "s")
    announce(
        f"dense scope {', '.join(scope) or '(empty)'}: {plan.segments} segments, "
        f"{plan.total_pending} of them in {books} to embed with {embedder.name}"
    )
    progress = EmbedProgress(settings.data_dir, embedder.name, scope, report=report)
    written = embed_scope(
        store,
        catalog,
        embedder,
        scope,
        batch_size=settings.embedding_batch_size,
        workers=settings.embedding_workers,
        progress=progress,
        plan=plan,
    )
    return plan, written


def _pending_records(
    store: SegmentStore, embedder_name: str, plan: ScopePlan
) -> Iterator[SegmentRecord]:
    """Yield the segments without a current vector, one book in memory at a time."""
    for title in plan.pending:
        known = store.vector_digests(title)
        for record in store.span(title, "", "~", limit=MAX_BOOK_SEGMENTS):
            if known.get(record.ref) != vector_digest(record, embedder_name):
                yield record


def _batches(
    records: Iterable[SegmentRecord], size: int
) -> Iterator[list[SegmentRecord]]:
    batch: list[SegmentRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _embed_batches(
    batches: Iterable[list[SegmentRecord]],
    embedder: Embeddings,
    workers: int,
    inline: bool,
) -> Iterator[tuple[list[SegmentRecord], Vectors]]:
    """Embed batches, in worker processes when the provider is the local model."""
    from torah_study.embeddings.e5 import E5Embeddings

    if workers <= 1 or not isinstance(embedder, E5Embeddings) or inline:
        for batch in batches:
            yield batch, embedder.embed_passages([passage_text(r) for r in batch])
        return
    # Each worker runs one OpenMP thread: two threads per process under load
    # were measured to slow a single query by an order of magnitude.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(os.getpid(),),
    ) as pool:
        window: list[tuple[list[SegmentRecord], Future[Any]]] = []
        for batch in batches:
            window.append(
                (batch, pool.submit(_embed_in_worker, [passage_text(r) for r in batch]))
            )
            if len(window) >= workers * 2:
                done, future = window.pop(0)
                yield done, future.result()
        for done, future in window:
            yield done, future.result()


_worker_model: Embeddings | None = None


def _init_worker(parent: int) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    # A worker whose ingest process was killed would otherwise keep running,
    # so it exits once it is handed to a new parent. ``parent`` comes from the
    # ingest process because a slow start-up may outlive it.

    def exit_when_orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(1)

    threading.Thread(target=exit_when_orphaned, daemon=True).start()


def _embed_in_worker(texts: list[str]) -> Vectors:
    global _worker_model
    if _worker_model is None:
        from torah_study.embeddings.e5 import E5Embeddings

        _worker_model = E5Embeddings()
    return np.asarray(_worker_model.embed_passages(texts), dtype=np.float32)
