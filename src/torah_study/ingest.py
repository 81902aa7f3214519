"""Ingestion: export files and dataset dumps → segments → keyword index → vectors.

Each stage is resumable. A book is rewritten only when the content hash of
its chosen files changed, and a segment is embedded only when its text
changed, so re-running after an interruption continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from torah_study.config import Settings
from torah_study.embeddings import build_embeddings
from torah_study.embeddings.base import Embeddings
from torah_study.embeddings.scope import check_scope, in_scope
from torah_study.embeddings.stage import embed_configured_scope
from torah_study.index.base import SegmentRecord, SegmentStore, position_key
from torah_study.index.factory import open_store
from torah_study.library.catalog import (
    OUTSIDE_TITLES_FILE,
    Catalog,
    read_toc_titles,
)
from torah_study.library.dump import (
    STAGING_FILE,
    DumpFileError,
    DumpReport,
    DumpStaging,
    read_title_info,
    staged_text_files,
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
from torah_study.library.files import atomic_write_text
from torah_study.library.hebrew import search_text
from torah_study.library.lexicon import Lexicon, build_lexicon
from torah_study.library.links import (
    LinkSourceError,
    build_links,
    check_link_source,
    link_files,
    stored_link_count,
)
from torah_study.library.parashot import read_parashot, save_parashot
from torah_study.writer_lock import writer_lock

logger = logging.getLogger(__name__)

STATE_FILE = "ingest-state.json"
# Part of every book's stored hash: raising it re-indexes all books after a
# change to how segments or their search text are built.
INDEX_FORMAT = 3


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
    vectors_in_scope: int | None = None
    vectors_written: int = 0
    vectors_total: int = 0
    links: int = 0
    links_skipped: int = 0
    links_bad: int = 0
    # True when no links CSV was given, so the table of an earlier run stayed.
    links_kept: bool = False
    foreign_versions: int = 0
    dump: DumpReport = field(default_factory=DumpReport)
    lexicon_words: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())
        langs = ", ".join(f"{k} {v}" for k, v in sorted(self.languages.items()))
        lines = [
            f"files read: {self.files} ({len(self.corrupt)} corrupt, skipped; "
            f"{self.foreign_versions} translations into other languages left out)",
            f"books: {self.books} ({self.books_skipped} unchanged)",
            f"segments: {self.segments} ({self.segments_written} written)",
            f"languages (segments with text): {langs}",
            f"vectors: {self.vectors_total} ({self.vectors_written} embedded now, "
            + (
                f"{self.vectors_in_scope} segments in the dense scope)"
                if self.vectors_in_scope is not None
                else "embedding skipped)"
            ),
            (
                f"links: {self.links} kept from an earlier run (no links CSV "
                "in this run)"
                if self.links_kept
                else f"links: {self.links} ({self.links_skipped} naming texts or "
                f"passages the library lacks, {self.links_bad} malformed rows, "
                "skipped)"
            ),
            f"lexicon: {self.lexicon_words} English words with Hebrew translations",
            f"time: {stages}",
        ]
        if self.dump.files:
            lines.append(
                f"dump: {self.dump.files} files, {self.dump.lines} lines read now, "
                f"{self.dump.staged} rows staged, {self.dump.foreign} rows in other "
                f"languages left out, {self.dump.bad_count} bad lines skipped"
            )
        lines.extend(f"corrupt file: {path}: {error}" for path, error in self.corrupt)
        lines.extend(
            f"bad dump line: {path}:{line}: {reason}"
            for path, line, reason in self.dump.bad
        )
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
        atomic_write_text(self.path, json.dumps({"books": self.books}))


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


def read_files(
    paths: Sequence[Path], report: IngestReport, show: bool
) -> list[TextFile]:
    files: list[TextFile] = []
    for path in tqdm(paths, desc="read", unit="file", disable=not show):
        try:
            file = read_text_file(path)
        except (ExportError, OSError) as error:
            logger.error("Skipping corrupt file %s: %s", path, error)
            report.corrupt.append((str(path), str(error)))
            continue
        if file.foreign:
            # A French or German translation filed under English/.
            report.foreign_versions += 1
            continue
        files.append(file)
    report.files = len(paths)
    return files


def ingest(
    settings: Settings,
    export_dir: Path | None,
    *,
    dumps: Sequence[Path] = (),
    links: Sequence[Path] = (),
    embeddings: Embeddings | None = None,
    show_progress: bool = True,
    embed: bool = True,
) -> IngestReport:
    """Ingest an export, dataset dumps and links CSVs into the data folder.

    ``dumps`` adds to ``settings.dump_paths`` and ``links`` to
    ``settings.link_paths``. A title present in both the export and a dump
    is read from the export. Links CSVs lying next to a dump are read too.

    The link table is rebuilt from every links source of this run: the
    export's ``links/`` folder, CSVs next to the dumps, ``links`` and
    ``settings.link_paths``. A run with none of them keeps the table of the
    earlier run. A named links source that is missing raises ExportError
    before anything is written.

    With ``embed`` off the embedding stage is skipped, so keyword search is
    ready sooner and ``torah-study embed`` adds the vectors later. Raises
    ScopeError, after the books are stored, when the dense scope names
    nothing in the library.

    Raises WriterLockError when another process is writing to the data folder.
    """
    with writer_lock(settings.data_dir, "ingest"):
        embedder = embeddings or build_embeddings(settings)
        store = open_store(settings, embedder.dimension)
        try:
            return _ingest(
                settings, store, embedder, export_dir, dumps, links,
                show_progress, embed,
            )  # fmt: skip
        finally:
            store.close()


def _ingest(
    settings: Settings,
    store: SegmentStore,
    embedder: Embeddings,
    export_dir: Path | None,
    dumps: Sequence[Path],
    links: Sequence[Path],
    show_progress: bool,
    embed: bool,
) -> IngestReport:
    report = IngestReport()
    state = IngestState(settings.data_dir / STATE_FILE)
    if state.books and not store.count():
        # An empty store (a new database, or another backend) contains none of
        # the books the state file lists as written, so all are written again.
        state.books.clear()
    catalog = (
        Catalog.load(settings.catalog_path)
        if settings.catalog_path.exists()
        else Catalog()
    )

    started = time.perf_counter()
    dump_paths = list(dict.fromkeys([*settings.dump_paths, *dumps]))
    if export_dir is None and not dump_paths:
        raise ExportError("Nothing to ingest: give an export folder or a dump file.")
    named_links = list(dict.fromkeys([*settings.link_paths, *links]))
    for source in named_links:
        try:
            check_link_source(source)
        except LinkSourceError as error:
            raise ExportError(str(error)) from error
    paths = find_text_files(export_dir) if export_dir is not None else []
    files = read_files(paths, report, show_progress)
    groups: dict[str, list[TextFile]] = defaultdict(list)
    for file in files:
        groups[file.title].append(file)
    schema_titles = read_schema_titles(export_dir) if export_dir else {}
    title_info = read_title_info(export_dir)
    parashot = read_parashot(export_dir) if export_dir else None
    if parashot:
        save_parashot(parashot, settings.parashot_path)
    staging = _stage_dumps(dump_paths, settings, report, show_progress)
    report.seconds["read"] = time.perf_counter() - started

    started = time.perf_counter()
    titles = sorted(groups, key=lambda t: (groups[t][0].categories, t))
    progress = tqdm(titles, desc="index", unit="book", disable=not show_progress)
    for order, title in enumerate(progress):
        schema = title_info[title].schema if title in title_info else None
        _index_title(
            title, groups[title], order, schema, schema_titles,
            store, catalog, state, settings, report,
        )  # fmt: skip
    if staging is not None:
        try:
            dump_titles = [t for t in staging.titles() if t[0] not in groups]
            progress = tqdm(
                dump_titles, desc="index dump", unit="book", disable=not show_progress
            )
            for order, (title, category) in enumerate(progress, start=len(titles)):
                source = dump_paths[0] if len(dump_paths) == 1 else Path("dump")
                dump_files = staged_text_files(
                    staging, title, category, title_info, source
                )
                _index_title(
                    title, dump_files, order, None, schema_titles,
                    store, catalog, state, settings, report,
                )  # fmt: skip
        finally:
            staging.close()
    report.seconds["parse+write"] = time.perf_counter() - started

    toc = read_toc_titles(export_dir) if export_dir else []
    if toc:
        outside = settings.catalog_path.with_name(OUTSIDE_TITLES_FILE)
        atomic_write_text(outside, json.dumps(toc, ensure_ascii=False))

    started = time.perf_counter()
    link_sources = [
        *([export_dir] if export_dir is not None else []),
        *(
            csv
            for dump in dump_paths
            for csv in sorted(dump.parent.glob("*links*.csv"))
        ),
        *named_links,
    ]
    if link_files(link_sources):
        linked = build_links(link_sources, catalog, settings.links_path)
        report.links, report.links_skipped = linked.stored, linked.skipped
        report.links_bad = linked.bad
    else:
        # No links CSV in this run: the table of an earlier run stays.
        report.links = stored_link_count(settings.links_path)
        report.links_kept = True
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
        saved.save(lexicon_path)
    report.lexicon_words = len(saved)
    report.seconds["lexicon"] = time.perf_counter() - started

    started = time.perf_counter()
    if embed:
        _embed_stage(store, catalog, embedder, settings, report, show_progress)
    report.vectors_total = store.vector_count()
    report.seconds["embed"] = time.perf_counter() - started

    started = time.perf_counter()
    store.finish()
    report.seconds["index"] = time.perf_counter() - started
    return report


def _stage_dumps(
    paths: Sequence[Path], settings: Settings, report: IngestReport, show: bool
) -> DumpStaging | None:
    """Stage the rows of every dump file; return the staging table, or None."""
    if not paths:
        return None
    for path in paths:
        if path.is_dir():
            raise ExportError(f"Dump {path} is a folder: give the dump file itself.")
        if not path.is_file():
            raise ExportError(f"Dump file not found: {path}")
    staging = DumpStaging(settings.data_dir / STAGING_FILE)
    try:
        for path in tqdm(paths, desc="stage dump", unit="file", disable=not show):
            staging.stage(path, report.dump)
    except (DumpFileError, OSError, EOFError) as error:
        staging.close()
        raise ExportError(str(error)) from error
    return staging


def _index_title(
    title: str,
    files: Sequence[TextFile],
    order: int,
    schema: dict[str, Any] | None,
    schema_titles: dict[str, tuple[list[str], list[str]]],
    store: SegmentStore,
    catalog: Catalog,
    state: IngestState,
    settings: Settings,
    report: IngestReport,
) -> None:
    """Build the books of one title (one per node of a complex text) and index them."""
    try:
        book_texts = build_book_texts(files, order, schema)
    except (TypeError, ValueError, AttributeError, RecursionError) as error:
        # A malformed book is skipped and its stored copy is kept.
        paths = ", ".join(dict.fromkeys(str(f.path) for f in files))
        logger.error("Skipping %s (%s): %s", title, paths, error)
        report.corrupt.append((paths, f"{title}: {error}"))
        return
    for book_text in book_texts:
        book = book_text.book
        aliases, he_names = schema_titles.get(book.title, ([], []))
        book.aliases = aliases
        book.he_section_names = he_names or book.he_section_names
        if settings.books and not in_scope(book, settings.books):
            continue
        _index_book(book_text, store, catalog, state, settings, report)


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
    # The catalog is saved before the rows are written: a serving process
    # refreshes its index before it reloads the catalog, so every book it
    # finds in the index is then in its catalog too.
    catalog.add(book)
    catalog.save(settings.catalog_path)
    store.replace_book(book.title, records, search)
    state.books[book.title] = digest
    state.save()
    report.segments_written += len(records)


def _embed_stage(
    store: SegmentStore,
    catalog: Catalog,
    embedder: Embeddings,
    settings: Settings,
    report: IngestReport,
    show_progress: bool,
) -> None:
    """Embed the dense scope, reporting its size first and progress after."""
    # A library limited by ``books`` may lack scoped books on purpose.
    check_scope(settings.dense_scope, catalog, strict=not settings.books)
    say = tqdm.write if show_progress else None
    plan, report.vectors_written = embed_configured_scope(
        store, catalog, embedder, settings, announce=say or logger.info, report=say
    )
    report.vectors_in_scope = plan.segments


ProgressCallback = Callable[[str, int, int], None]
