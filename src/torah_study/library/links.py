"""Links between passages: Sefaria's link CSV files and the shape of commentaries.

Sefaria-Export ships ``links/*.csv`` with one row per link: two refs and a
connection type ("commentary", "quotation", "reference" and others, often
empty). Ingestion reads every file into a small SQLite table keyed by book
and position, so the passages linked to a retrieved segment are found with
one indexed query. Commentaries named "X on Y" are linked by their shape
without any file: "Rashi on Genesis 1:1:1" comments on "Genesis 1:1".
"""

from __future__ import annotations

import csv
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from torah_study.index.base import position_key, position_upper_bound
from torah_study.library.catalog import Catalog
from torah_study.library.refs import Ref, RefError

logger = logging.getLogger(__name__)

LINKS_FILE = "links.sqlite"
_BATCH = 10_000
# Sefaria's header spells "Conection Type"; both spellings are read.
_TYPE_COLUMNS = ("Conection Type", "Connection Type")


@dataclass(frozen=True)
class Link:
    """A passage linked to another, with how it is linked."""

    ref: str
    kind: str


@dataclass
class LinkReport:
    files: int = 0
    rows: int = 0
    stored: int = 0
    # Rows naming a book the library lacks, a ref that does not parse or a
    # ref past the end of its book.
    skipped: int = 0
    # Rows that are not links at all: an empty citation or broken CSV.
    bad: int = 0


class LinkSourceError(ValueError):
    """Raised for a links source given by name that cannot be read."""


def check_link_source(source: Path) -> None:
    """Raise LinkSourceError unless ``source`` is a file or has ``links/``."""
    if source.is_dir():
        if not (source / "links").is_dir():
            raise LinkSourceError(
                f"Links folder {source} has no links/ folder of CSV files: give "
                "an export folder or the CSV files themselves."
            )
    elif not source.is_file():
        raise LinkSourceError(f"Links file not found: {source}")


def link_files(sources: Path | Sequence[Path]) -> list[Path]:
    """List links CSVs: an export folder gives its ``links/*.csv``, a file itself.

    The current export splits links into ``links0.csv``, ``links1.csv`` and
    so on; all are read. Missing sources are logged and left out; check
    sources named by the user first with :func:`check_link_source`.
    """
    paths: list[Path] = []
    for source in [sources] if isinstance(sources, Path) else sources:
        if source.is_dir():
            folder = source / "links"
            if folder.is_dir():
                paths.extend(sorted(folder.glob("*.csv")))
        elif source.is_file():
            paths.append(source)
        else:
            logger.error("Links file not found: %s", source)
    return list(dict.fromkeys(paths))


def read_link_rows(
    sources: Path | Sequence[Path], report: LinkReport | None = None
) -> Iterator[tuple[str, str, str]]:
    """Yield (ref, ref, type) from links CSVs, one row at a time, in file order.

    Rows that CSV cannot read or that lack a citation are logged with their
    file and line, counted in ``report.bad`` and skipped.
    """
    for path in link_files(sources):
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            if "Citation 1" not in fields or "Citation 2" not in fields:
                logger.error(
                    "Skipping %s: it has no Citation 1/Citation 2 columns", path
                )
                continue
            column = next((c for c in _TYPE_COLUMNS if c in fields), None)
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as error:
                    _bad_row(report, path, reader.line_num, str(error))
                    continue
                first, second = row.get("Citation 1"), row.get("Citation 2")
                if not first or not second:
                    _bad_row(report, path, reader.line_num, "missing a citation")
                    continue
                kind = (row.get(column) or "") if column else ""
                yield first, second, kind


def _bad_row(report: LinkReport | None, path: Path, line: int, reason: str) -> None:
    logger.warning("Skipping %s line %d: %s", path, line, reason)
    if report is not None:
        report.bad += 1


def _span(ref: Ref) -> tuple[str, str, str]:
    low = position_key(ref.start) if ref.start else ""
    return ref.book, low, position_upper_bound(ref.last)


def build_links(
    sources: Path | Sequence[Path], catalog: Catalog, path: Path
) -> LinkReport:
    """Write the link table for ``sources`` to ``path``, replacing it whole.

    ``sources`` are export folders and links CSV files (see
    :func:`link_files`). Rows are streamed, so memory does not grow with
    the files. The table is written to a temporary file first, so a failed
    run leaves the previous table in place.
    """
    files = link_files(sources)
    report = LinkReport(files=len(files))
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    connection = sqlite3.connect(tmp)
    try:
        connection.execute(
            "CREATE TABLE links (book TEXT, low TEXT, high TEXT, other TEXT, kind TEXT)"
        )
        batch: list[tuple[str, str, str, str, str]] = []
        for first, second, kind in read_link_rows(files, report):
            report.rows += 1
            try:
                # Validated: a ref past the end of its book ("Exodus 9999:1")
                # would be a link to no text.
                a = catalog.parse(first)
                b = catalog.parse(second)
            except RefError:
                report.skipped += 1
                continue
            kind = kind.strip() or "link"
            batch.append((*_span(a), b.normal(), kind))
            batch.append((*_span(b), a.normal(), kind))
            report.stored += 1
            if len(batch) >= _BATCH:
                connection.executemany("INSERT INTO links VALUES (?,?,?,?,?)", batch)
                batch.clear()
        connection.executemany("INSERT INTO links VALUES (?,?,?,?,?)", batch)
        connection.execute("CREATE INDEX links_position ON links (book, low)")
        connection.commit()
    finally:
        connection.close()
    tmp.replace(path)
    return report


class LinkIndex:
    """Read side of the link table, plus commentary links from the catalog."""

    def __init__(self, path: Path, catalog: Catalog) -> None:
        self.catalog = catalog
        self._path = path
        self._connection: sqlite3.Connection | None = None
        if path.exists():
            # check_same_thread is off: the service reads from worker threads,
            # and the table is never written through this connection.
            self._connection = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False
            )

    def related(self, ref: str, limit: int = 8) -> list[Link]:
        """Return passages linked to ``ref``: comments on it first, then links."""
        try:
            parsed = self.catalog.parse(ref, validate=False)
        except RefError:
            return []
        # TODO: a range ("Genesis 1:1-3") gets the links of its first segment only.
        found: list[Link] = []
        covered: list[Ref] = [parsed]
        for link in [*self._commentaries(parsed), *self._stored(parsed)]:
            try:
                target = self.catalog.parse(link.ref, validate=False)
            except RefError:
                continue
            # "Rashi on Amos 1:1:1" adds nothing next to "Rashi on Amos 1:1".
            if any(ref.contains(target) for ref in covered):
                continue
            covered.append(target)
            found.append(link)
            if len(found) >= limit:
                break
        return found

    def _commentaries(self, ref: Ref) -> list[Link]:
        """Return the text a comment explains, or the comments on a text.

        For "Rashi on Genesis 1:1:2" that is "Genesis 1:1" (kind "base");
        for "Genesis 1:1" it is "X on Genesis 1:1" for each commentary with
        a comment there (kind "commentary").
        """
        links: list[Link] = []
        own = self.catalog.books.get(ref.book)
        if own is not None and own.base_title in self.catalog.books and ref.start:
            base = self.catalog.books[own.base_title]
            point = ref.start[: base.depth]
            try:
                target = base.ref(point)
                self.catalog.validate(target)
            except RefError:
                pass
            else:
                links.append(Link(target.normal(), "base"))
        for book in self.catalog:
            if book.base_title != ref.book or not ref.start:
                continue
            candidate = book.ref(ref.start)
            try:
                self.catalog.validate(candidate)
            except RefError:
                continue
            if _has_text(book.shape, ref.start):
                links.append(Link(candidate.normal(), "commentary"))
        return links

    def _stored(self, ref: Ref) -> list[Link]:
        if self._connection is None or not ref.start:
            return []
        key = position_key(ref.start)
        rows = self._connection.execute(
            "SELECT other, kind FROM links WHERE book = ? AND low <= ? AND high > ? "
            "ORDER BY low DESC LIMIT 50",
            (ref.book, key, key),
        ).fetchall()
        return [Link(other, kind) for other, kind in rows]


def _has_text(shape: object, point: tuple[int, ...]) -> bool:
    """Tell whether a book's shape contains any segment under ``point``."""
    node = shape
    for index in point:
        if not isinstance(node, list) or not 1 <= index <= len(node):
            return False
        node = node[index - 1]
    return _count(node) > 0


def _count(node: object) -> int:
    if isinstance(node, list):
        return sum(_count(child) for child in node)
    return int(node) if isinstance(node, int) else 0


def stored_link_count(path: Path) -> int:
    """Return the number of links in the table at ``path``; 0 when there is none."""
    if not path.exists():
        return 0
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (rows,) = connection.execute("SELECT COUNT(*) FROM links").fetchone()
    except sqlite3.Error:
        return 0
    finally:
        connection.close()
    # Each link is stored once from each end.
    return int(rows) // 2
