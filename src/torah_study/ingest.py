"""Ingestion: export files → segments → keyword index → dense vectors.

Each stage is resumable. A book is rewritten only when the content hash of
its chosen files changed, and a segment is embedded only when its text
changed, so re-running after an interruption continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from torah_study.config import Settings
from torah_study.embeddings import build_embeddings
from torah_study.embeddings.base import Embeddings, Vectors
from torah_study.index.base import SegmentRecord, SegmentStore, position_key
from torah_study.index.factory import open_store
from torah_study.library.catalog import (
    OUTSIDE_TITLES_FILE,
    Book,
    Catalog,
    read_toc_titles,
)
from torah_study.library.export import (
    BookText,
    ExportError,
    TextFile,
    build_book_texts,
    find_text_files,
    read_schema_titles,
    read_text_file,
)
from torah_study.library.hebrew import search_text
from torah_study.library.lexicon import Lexicon, build_lexicon
from torah_study.library.links import build_links
from torah_study.library.parashot import read_parashot, save_parashot
from torah_study.retrieval.rerank import EMBED_CHARS, passage_text

logger = logging.getLogger(__name__)

STATE_FILE = "ingest-state.json"
# Part of every book's stored hash: raising it re-indexes all books after a
# change to how segments or their search text are built.
INDEX_FORMAT = 3
# The same for vectors: raising it re-embeds everything in the dense scope.
EMBED_FORMAT = 3


@dataclass
class IngestReport:
    """Counts of one ingestion run and the seconds spent in each stage."""

    files: int = 0
    books: int = 0
    books_skipped: int = 0
    segments: int = 0
    segments_written: int = 0
    languages: Counter[str] = field(default_factory=Counter)
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    vectors_written: int = 0
    vectors_total: int = 0
    links: int = 0
    links_skipped: int = 0
    lexicon_words: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())
        langs = ", ".join(f"{k} {v}" for k, v in sorted(self.languages.items()))
        lines = [
            f"files read: {self.files} ({len(self.corrupt)} corrupt, skipped)",
            f"books: {self.books} ({self.books_skipped} unchanged)",
            f"segments: {self.segments} ({self.segments_written} written)",
            f"languages (segments with text): {langs}",
            f"vectors: {self.vectors_total} ({self.vectors_written} embedded now)",
            f"links: {self.links} ({self.links_skipped} naming texts the library "
            "lacks, skipped)",
            f"lexicon: {self.lexicon_words} English words with Hebrew translations",
            f"time: {stages}",
        ]
        lines.extend(f"corrupt file: {path}: {error}" for path, error in self.corrupt)
        return "\n".join(lines)


class IngestState:
    """Content hashes of ingested books, saved after every book."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.books: dict[str, str] = {}
        if path.exists():
            try:
                self.books = json.loads(path.read_text(encoding="utf-8"))["books"]
            except (ValueError, KeyError) as error:
                logger.warning("Ignoring unreadable ingest state %s: %s", path, error)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"books": self.books}), encoding="utf-8")
        tmp.replace(self.path)


def in_scope(book: Book, scope: Sequence[str]) -> bool:
    """Tell whether ``scope`` names a book by title or category ('*' = all).

    A commentary is in scope only when named itself, by its commentator or by
    "Commentary": its categories include the base book's ("Torah"), and
    naming Torah should not pull in every comment on it.
    """
    if "*" in scope:
        return True
    if book.commentator:
        names = {book.title, book.commentator, "Commentary"}
    else:
        names = {book.title, *book.categories}
    return any(name in names for name in scope)


def to_records(book_text: BookText) -> tuple[list[SegmentRecord], list[str]]:
    book = book_text.book
    title_words = f"{book.title} {book.he_title}"
    records: list[SegmentRecord] = []
    search: list[str] = []
    for segment in book_text.segments:
        digest = hashlib.sha256(f"{segment.he}\x00{segment.en}".encode()).hexdigest()
        records.append(
            SegmentRecord(
                ref=segment.ref.normal(),
                book=book.title,
                pos=position_key(segment.ref.start),
                he=segment.he,
                en=segment.en,
                categories=book.categories,
                he_version=segment.versions.get("he", ""),
                en_version=segment.versions.get("en", ""),
                he_license=segment.licenses.get("he", ""),
                en_license=segment.licenses.get("en", ""),
                digest=digest[:16],
            )
        )
        search.append(search_text(f"{title_words} {segment.he} {segment.en}"))
    return records, search


def vector_digest(record: SegmentRecord, embedder: Embeddings) -> str:
    """Identify what a stored vector was computed from: format, model and text.

    A passage longer than the embedded cut is marked with the cut, so that
    changing it re-embeds the long passages and keeps the vectors of the rest.
    """
    digest = f"{EMBED_FORMAT}:{embedder.name}:{record.digest}"
    if len(record.en or record.he) > EMBED_CHARS:
        digest += f":cut{EMBED_CHARS}"
    return digest


def read_files(
    paths: Sequence[Path], report: IngestReport, show: bool
) -> list[TextFile]:
    files: list[TextFile] = []
    for path in tqdm(paths, desc="read", unit="file", disable=not show):
        try:
            files.append(read_text_file(path))
        except (ExportError, OSError) as error:
            logger.error("Skipping corrupt file %s: %s", path, error)
            report.corrupt.append((str(path), str(error)))
    report.files = len(paths)
    return files


def ingest(
    settings: Settings,
    export_dir: Path,
    *,
    embeddings: Embeddings | None = None,
    show_progress: bool = True,
) -> IngestReport:
    """Ingest ``export_dir`` into the settings' data folder and return a report."""
    report = IngestReport()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    state = IngestState(settings.data_dir / STATE_FILE)
    embedder = embeddings or build_embeddings(settings)
    store = open_store(settings, embedder.dimension)
    if state.books and not store.count():
        # An empty store (a new database, or another backend) holds none of
        # the books the state file lists as written, so all are written again.
        state.books.clear()
    catalog = (
        Catalog.load(settings.catalog_path)
        if settings.catalog_path.exists()
        else Catalog()
    )

    started = time.perf_counter()
    files = read_files(find_text_files(export_dir), report, show_progress)
    groups: dict[str, list[TextFile]] = defaultdict(list)
    for file in files:
        groups[file.title].append(file)
    schema_titles = read_schema_titles(export_dir)
    parashot = read_parashot(export_dir)
    if parashot:
        save_parashot(parashot, settings.parashot_path)
    selected_books = settings.books
    report.seconds["read"] = time.perf_counter() - started

    started = time.perf_counter()
    titles = sorted(groups, key=lambda t: (groups[t][0].categories, t))
    progress = tqdm(titles, desc="index", unit="book", disable=not show_progress)
    for order, title in enumerate(progress):
        try:
            book_texts = build_book_texts(groups[title], order)
        except (TypeError, ValueError, AttributeError, RecursionError) as error:
            # A malformed book is skipped and its stored copy is kept.
            paths = ", ".join(str(f.path) for f in groups[title])
            logger.error("Skipping %s (%s): %s", title, paths, error)
            report.corrupt.append((paths, f"{title}: {error}"))
            continue
        for book_text in book_texts:
            book = book_text.book
            book.aliases, book.he_section_names = schema_titles.get(
                book.title, ([], [])
            )
            if selected_books and not in_scope(book, selected_books):
                continue
            _index_book(book_text, store, catalog, state, settings, report)
    report.seconds["parse+write"] = time.perf_counter() - started

    toc = read_toc_titles(export_dir)
    if toc:
        outside = settings.catalog_path.with_name(OUTSIDE_TITLES_FILE)
        outside.write_text(json.dumps(toc, ensure_ascii=False), encoding="utf-8")

    started = time.perf_counter()
    links = build_links(export_dir, catalog, settings.links_path)
    report.links, report.links_skipped = links.stored, links.skipped
    report.seconds["links"] = time.perf_counter() - started

    started = time.perf_counter()
    lexicon_path = settings.lexicon_path
    saved = None if report.segments_written else Lexicon.read(lexicon_path)
    if saved is None:
        # The lexicon is learned from every bilingual segment, so it is
        # rebuilt whenever a book changed or the saved one is missing or
        # invalid.
        # TODO: a run interrupted after writing books but before this stage
        # leaves the old lexicon in place. Record the ingest state it was
        # built from.
        saved = build_lexicon(store.bilingual())
        tmp = lexicon_path.with_suffix(".tmp")
        saved.save(tmp)
        tmp.replace(lexicon_path)
    report.lexicon_words = len(saved)
    report.seconds["lexicon"] = time.perf_counter() - started

    started = time.perf_counter()
    report.vectors_written = embed_scope(
        store, catalog, embedder, settings, show_progress=show_progress
    )
    report.vectors_total = store.vector_count()
    report.seconds["embed"] = time.perf_counter() - started

    started = time.perf_counter()
    store.finish()
    report.seconds["index"] = time.perf_counter() - started
    return report


def _index_book(
    book_text: BookText,
    store: SegmentStore,
    catalog: Catalog,
    state: IngestState,
    settings: Settings,
    report: IngestReport,
) -> None:
    """Write one book unless its hash matches the last run; update the report."""
    book = book_text.book
    report.books += 1
    report.segments += len(book_text.segments)
    for segment in book_text.segments:
        report.languages.update(lang for lang in ("he", "en") if getattr(segment, lang))
    digest = f"{INDEX_FORMAT}:{book_text.digest}"
    if state.books.get(book.title) == digest and book.title in catalog:
        report.books_skipped += 1
        return
    records, search = to_records(book_text)
    store.replace_book(book.title, records, search)
    catalog.add(book)
    catalog.save(settings.catalog_path)
    state.books[book.title] = digest
    state.save()
    report.segments_written += len(records)


def embed_scope(
    store: SegmentStore,
    catalog: Catalog,
    embedder: Embeddings,
    settings: Settings,
    *,
    show_progress: bool = True,
) -> int:
    """Embed the segments of books in the dense scope whose text changed."""
    pending: list[SegmentRecord] = []
    for book in catalog:
        if not in_scope(book, settings.dense_scope):
            continue
        known = store.vector_digests(book.title)
        records = store.span(book.title, "", "~", limit=1_000_000)
        current = {r.ref for r in records}
        stale = [ref for ref in known if ref not in current]
        if stale:
            store.delete_vectors(stale)
        pending.extend(
            r for r in records if known.get(r.ref) != vector_digest(r, embedder)
        )
    if not pending:
        return 0
    batch_size = settings.embedding_batch_size
    batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
    bar = tqdm(total=len(pending), desc="embed", unit="seg", disable=not show_progress)
    written = 0
    for records, vectors in _embed_batches(
        batches, embedder, settings.embedding_workers
    ):
        digests = [vector_digest(r, embedder) for r in records]
        store.add_vectors(records, vectors, digests)
        written += len(records)
        bar.update(len(records))
    bar.close()
    return written


def _embed_batches(
    batches: list[list[SegmentRecord]], embedder: Embeddings, workers: int
) -> Iterator[tuple[list[SegmentRecord], Vectors]]:
    """Embed batches, in worker processes when the provider is the local model."""
    from torah_study.embeddings.e5 import E5Embeddings

    if workers <= 1 or not isinstance(embedder, E5Embeddings) or len(batches) < 2:
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


ProgressCallback = Callable[[str, int, int], None]
