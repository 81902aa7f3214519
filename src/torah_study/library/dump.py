"""Read Sefaria's dataset dump: JSON Lines with one segment of one version per row.

Each line is ``{"text": "...", "metadata": {"ref": "Genesis 1:1", "url": ...,
"versionTitle": ..., "lang": "he", "docCategory": "Tanakh", ...}}``; other
metadata fields (``dataQuality``, ``pagerank`` and any added later) are
allowed. A dump runs to several gigabytes, so it is read as a stream: each
row is staged in a SQLite file in the data folder, keyed by book, language,
version and position, and books are then rebuilt one at a time from the
staging table. The staging table records how far each file was read, so an
interrupted run continues after the last committed line.

Bad lines (invalid JSON, missing fields, a ref without an address) are
recorded with their file and line number and skipped.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from torah_study.index.base import position_key
from torah_study.library.categories import category_key
from torah_study.library.export import (
    LANGUAGES,
    TextFile,
    actual_language,
    node_title,
    read_schemas,
)
from torah_study.library.refs import RefError, daf_to_position

logger = logging.getLogger(__name__)

STAGING_FILE = "dump-staging.sqlite"
# Lines staged between commits; an interruption repeats at most this many.
COMMIT_EVERY = 5_000
# Bad lines kept with their reason; later ones are only counted.
MAX_BAD_KEPT = 1_000
# Bad lines logged as warnings while staging; the rest only reach the summary.
MAX_BAD_LOGGED = 20
# Largest position of a ref, an estimate well above the longest sections of
# the library. A larger position is a bad line, because rebuilding the book
# would pad a list to that length.
MAX_POSITION = 100_000

# Leading bytes of compressed files that are not read directly.
_COMPRESSED = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
_GZIP_MAGIC = b"\x1f\x8b"

# "Genesis 1:1", "Berakhot 2a:3", "Rashi on Genesis 1:1:1", "Ein Yaakov,
# Introduction 3": the title is everything before the last space-separated
# address. Sefaria's URLs use "." for ":", which is accepted too.
_REF = re.compile(r"^(?P<title>\S.*?)\s+(?P<address>\d+[ab]?(?:[:.]\d+)*)$")

# Section names by top category when no schema describes a book.
_DEFAULT_NAMES = {
    "tanakh": ["Chapter", "Verse"],
    "mishnah": ["Chapter", "Mishnah"],
    "talmud": ["Daf", "Line"],
}
_QUALITY_RANK = {"professional": 1}


@dataclass
class DumpReport:
    """Counts of one staging run; ``bad`` keeps the first bad lines."""

    files: int = 0
    lines: int = 0
    staged: int = 0
    foreign: int = 0
    bad_count: int = 0
    bad: list[tuple[str, int, str]] = field(default_factory=list)

    def add_bad(self, path: str, line: int, reason: str) -> None:
        self.bad_count += 1
        if len(self.bad) < MAX_BAD_KEPT:
            self.bad.append((path, line, reason))


@dataclass(frozen=True)
class DumpRow:
    """One parsed line: the book, its address and the text of one version."""

    title: str
    positions: tuple[int, ...]
    talmud: bool
    lang: str
    version: str
    text: str
    category: str
    quality: str


class DumpLineError(ValueError):
    """Raised for a dump line that cannot be used, with the reason."""


def split_ref(ref: str) -> tuple[str, tuple[int, ...], bool]:
    """Split a dump ref into title, 1-based positions and whether it is Talmud.

    "Berakhot 2a:3" gives ("Berakhot", (3, 3), True); "Ein Yaakov,
    Introduction 3" gives ("Ein Yaakov, Introduction", (3,), False).
    """
    match = _REF.match(" ".join(ref.split()))
    if not match:
        raise RefError(f"Ref {ref!r} has no address such as 1:1 or 2a:3.")
    parts = match.group("address").replace(".", ":").split(":")
    talmud = parts[0][-1] in "ab"
    first = daf_to_position(parts[0]) if talmud else int(parts[0])
    positions = (first, *(int(p) for p in parts[1:]))
    if min(positions) < 1:
        raise RefError(f"Ref {ref!r} has a position below 1.")
    if max(positions) > MAX_POSITION:
        raise RefError(f"Ref {ref!r} has a position above {MAX_POSITION:,}.")
    return match.group("title"), positions, talmud


def parse_line(raw: bytes) -> DumpRow | None:
    """Parse one dump line; None for a blank line, DumpLineError when bad."""
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise DumpLineError(f"invalid JSON ({error})") from error
    if not isinstance(data, dict):
        raise DumpLineError(f"expected a JSON object, found {type(data).__name__}")
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        raise DumpLineError("missing metadata object")
    text = data.get("text")
    missing = [k for k in ("ref", "lang") if not isinstance(meta.get(k), str)]
    if not isinstance(text, str):
        missing.insert(0, "text")
    if missing or not isinstance(text, str):
        raise DumpLineError(f"missing {', '.join(missing)}")
    try:
        title, positions, talmud = split_ref(meta["ref"])
    except RefError as error:
        raise DumpLineError(str(error)) from error
    category = meta.get("docCategory")
    if isinstance(category, list):
        category = "/".join(str(c) for c in category)
    lang = meta["lang"].strip().lower()
    version = str(meta.get("versionTitle") or "")
    quality = str(meta.get("dataQuality") or "")
    for name, value in (
        ("text", text),
        ("ref", meta["ref"]),
        ("versionTitle", version),
        ("docCategory", str(category or "")),
        ("dataQuality", quality),
    ):
        _check_encodable(name, value)
    return DumpRow(
        title=title,
        positions=positions,
        talmud=talmud,
        lang=lang,
        version=version,
        text=text,
        category=str(category or ""),
        quality=quality,
    )


def _check_encodable(name: str, value: str) -> None:
    """Raise DumpLineError when ``value`` cannot be stored as UTF-8.

    JSON allows escapes of lone surrogates ("\\ud800"), which no UTF-8 text
    can hold.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = value[error.start]
        raise DumpLineError(
            f"{name} contains U+{ord(bad):04X}, a lone surrogate that is not "
            "a character"
        ) from error


def compression(path: Path) -> str | None:
    """Return "gzip", "bzip2", "xz" or "zstd" when ``path`` is compressed, else None."""
    with path.open("rb") as handle:
        head = handle.read(6)
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    return next(
        (name for magic, name in _COMPRESSED.items() if head.startswith(magic)), None
    )


def open_dump(path: Path) -> IO[bytes] | gzip.GzipFile:
    """Open a dump file for reading bytes, decompressing a gzip file.

    Raises DumpFileError for a compression that is not read directly. Byte
    offsets of a gzip file count uncompressed bytes.
    """
    kind = compression(path)
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind is not None:
        raise DumpFileError(
            f"{path} is compressed with {kind}: decompress it first, or give "
            "it as plain or gzip-compressed JSON Lines."
        )
    return path.open("rb")


class DumpFileError(ValueError):
    """Raised for a dump file that cannot be read at all."""


class DumpStaging:
    """The SQLite staging table of dump rows, with how far each file was read."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Bad lines logged as warnings in this run; the summary lists them all.
        self._logged = 0
        self.db = sqlite3.connect(path)
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS files (
                path TEXT PRIMARY KEY, size INTEGER, mtime REAL,
                offset INTEGER, line INTEGER, done INTEGER);
            CREATE TABLE IF NOT EXISTS rows (
                title TEXT, lang TEXT, version TEXT, pos TEXT, positions TEXT,
                talmud INTEGER, text TEXT, category TEXT, quality TEXT,
                source TEXT,
                PRIMARY KEY (title, lang, version, pos)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS rows_source ON rows (source);
            CREATE TABLE IF NOT EXISTS bad (path TEXT, line INTEGER, reason TEXT,
                PRIMARY KEY (path, line));
            """
        )

    def close(self) -> None:
        self.db.close()

    def progress(self, path: Path) -> tuple[int, int, bool]:
        """Return (byte offset, line number, finished) recorded for ``path``."""
        found = self.db.execute(
            "SELECT offset, line, done FROM files WHERE path = ?", (str(path),)
        ).fetchone()
        return (
            (int(found[0]), int(found[1]), bool(found[2])) if found else (0, 0, False)
        )

    def stage(self, path: Path, report: DumpReport) -> None:
        """Stage the rows of one dump file, continuing after the last commit."""
        key = str(path.resolve())
        stat = path.stat()
        found = self.db.execute(
            "SELECT size, mtime, offset, line, done FROM files WHERE path = ?", (key,)
        ).fetchone()
        if found and (found[0], found[1]) != (stat.st_size, stat.st_mtime):
            # The file changed since it was staged: its rows are read again.
            self.db.execute("DELETE FROM rows WHERE source = ?", (key,))
            self.db.execute("DELETE FROM bad WHERE path = ?", (key,))
            found = None
        offset, line, done = (found[2], found[3], found[4]) if found else (0, 0, 0)
        report.files += 1
        if done:
            self._report_bad(key, report)
            return
        if not found:
            self.db.execute(
                "INSERT INTO files VALUES (?, ?, ?, 0, 0, 0)",
                (key, stat.st_size, stat.st_mtime),
            )
        batch: list[tuple[Any, ...]] = []
        with open_dump(path) as handle:
            handle.seek(offset)
            for raw in handle:
                line += 1
                offset += len(raw)
                report.lines += 1
                self._stage_line(key, raw, line, batch, report)
                if line % COMMIT_EVERY == 0:
                    self._commit(key, batch, offset, line, done=False)
        self._commit(key, batch, offset, line, done=True)
        self._report_bad(key, report)
        self._check_usable(path, key)

    def _check_usable(self, path: Path, key: str) -> None:
        """Raise DumpFileError when every line of a file was bad.

        Such a file is not a dump at all (another format, or text from
        another tool); an ingest that read nothing from it must not succeed.
        """
        if self.db.execute(
            "SELECT 1 FROM rows WHERE source = ? LIMIT 1", (key,)
        ).fetchone():
            return
        bad = self.db.execute(
            "SELECT COUNT(*), MIN(line) FROM bad WHERE path = ?", (key,)
        ).fetchone()
        if not bad or not bad[0]:
            return
        reason = self.db.execute(
            "SELECT reason FROM bad WHERE path = ? AND line = ?", (key, bad[1])
        ).fetchone()[0]
        raise DumpFileError(
            f"{path}: none of its lines is a dump row ({bad[0]} bad lines; "
            f"line {bad[1]}: {reason}). A dump is JSON Lines, one "
            '{"text": ..., "metadata": {...}} object per line.'
        )

    def _stage_line(
        self,
        key: str,
        raw: bytes,
        line: int,
        batch: list[tuple[Any, ...]],
        report: DumpReport,
    ) -> None:
        try:
            row = parse_line(raw)
        except DumpLineError as error:
            if self._logged < MAX_BAD_LOGGED:
                logger.warning("Skipping %s line %d: %s", key, line, error)
            elif self._logged == MAX_BAD_LOGGED:
                logger.warning("More bad lines in %s: the summary lists them", key)
            self._logged += 1
            self.db.execute(
                "INSERT OR REPLACE INTO bad VALUES (?, ?, ?)", (key, line, str(error))
            )
            return
        if row is None:
            return
        if row.lang not in LANGUAGES:
            report.foreign += 1
            return
        meta = {"versionTitle": row.version}
        if actual_language(meta, row.lang) != row.lang:
            report.foreign += 1
            return
        batch.append(
            (
                row.title,
                row.lang,
                row.version,
                position_key(row.positions),
                json.dumps(row.positions),
                int(row.talmud),
                row.text,
                row.category,
                row.quality,
                key,
            )
        )
        report.staged += 1

    def _commit(
        self, key: str, batch: list[tuple[Any, ...]], offset: int, line: int, done: bool
    ) -> None:
        # Rows and the file's progress are committed together, so a restart
        # never skips a row that was not stored.
        self.db.executemany(
            "INSERT OR REPLACE INTO rows VALUES (?,?,?,?,?,?,?,?,?,?)", batch
        )
        batch.clear()
        self.db.execute(
            "UPDATE files SET offset = ?, line = ?, done = ? WHERE path = ?",
            (offset, line, int(done), key),
        )
        self.db.commit()

    def _report_bad(self, key: str, report: DumpReport) -> None:
        """Add the bad lines of ``key``, from this run and earlier ones."""
        for path, line, reason in self.db.execute(
            "SELECT path, line, reason FROM bad WHERE path = ? ORDER BY line", (key,)
        ):
            report.add_bad(str(path), int(line), str(reason))

    # Reading books back ----------------------------------------------------

    def titles(self) -> list[tuple[str, str]]:
        """Return (title, docCategory) for every staged book, by category then title."""
        rows = self.db.execute(
            "SELECT title, MIN(category) FROM rows GROUP BY title"
        ).fetchall()
        return sorted(
            ((str(t), str(c or "")) for t, c in rows), key=lambda r: (r[1], r[0])
        )

    def versions(self, title: str) -> list[tuple[str, str, int, str]]:
        """Return (lang, version, rows, best quality) for each staged version."""
        return [
            (str(lang), str(version), int(count), str(quality or ""))
            for lang, version, count, quality in self.db.execute(
                "SELECT lang, version, COUNT(*), MAX(quality) FROM rows "
                "WHERE title = ? GROUP BY lang, version",
                (title,),
            )
        ]

    def segments(
        self, title: str, lang: str, version: str
    ) -> Iterator[tuple[tuple[int, ...], bool, str]]:
        """Yield (positions, talmud, text) of one version in position order."""
        for positions, talmud, text in self.db.execute(
            "SELECT positions, talmud, text FROM rows "
            "WHERE title = ? AND lang = ? AND version = ? ORDER BY pos",
            (title, lang, version),
        ):
            yield tuple(json.loads(positions)), bool(talmud), str(text)


def choose_dump_versions(
    versions: Sequence[tuple[str, str, int, str]],
) -> dict[str, str]:
    """Pick one version per language: professional quality first, then the fullest.

    Ties go to the alphabetically first version title, so runs are repeatable.
    """
    chosen: dict[str, tuple[int, int, str]] = {}
    for lang, version, count, quality in versions:
        rank = (_QUALITY_RANK.get(quality, 0), count, version)
        current = chosen.get(lang)
        if (
            current is None
            or (rank[0], rank[1]) > (current[0], current[1])
            or ((rank[0], rank[1]) == (current[0], current[1]) and version < current[2])
        ):
            chosen[lang] = rank
    return {lang: rank[2] for lang, rank in chosen.items()}


@dataclass
class TitleInfo:
    """Titles, categories and section names from an export's contents and schemas."""

    he_title: str = ""
    categories: list[str] = field(default_factory=list)
    schema: dict[str, Any] = field(default_factory=dict)


def read_title_info(export_dir: Path | None) -> dict[str, TitleInfo]:
    """Read Hebrew titles, categories and schemas of an export, when given one."""
    info: dict[str, TitleInfo] = {}
    if export_dir is None:
        return info
    try:
        toc = json.loads((export_dir / "table_of_contents.json").read_text("utf-8"))
    except (OSError, ValueError):
        toc = []

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, list):
            for child in node:
                walk(child, path)
        elif isinstance(node, dict):
            if isinstance(node.get("category"), str):
                walk(node.get("contents", []), [*path, node["category"]])
            elif isinstance(node.get("title"), str):
                categories = node.get("categories")
                if not isinstance(categories, list):
                    categories = path
                info[node["title"]] = TitleInfo(
                    str(node.get("heTitle") or ""), [str(c) for c in categories]
                )

    walk(toc, [])
    for data in read_schemas(export_dir):
        entry = info.setdefault(data["title"], TitleInfo())
        entry.schema = data
        entry.he_title = entry.he_title or str(data.get("heTitle") or "")
        if not entry.categories and isinstance(data.get("categories"), list):
            entry.categories = [str(c) for c in data["categories"]]
    return info


def _lookup(
    title: str, info: dict[str, TitleInfo]
) -> tuple[TitleInfo | None, list[str]]:
    """Find the title, or the book a "Title, Node, Subnode" part belongs to.

    Returns the book's entry and the node names below it.
    """
    pieces = title.split(", ")
    for cut in range(len(pieces), 0, -1):
        found = info.get(", ".join(pieces[:cut]))
        if found is not None:
            return found, pieces[cut:]
    return None, []


def _node_names(
    schema: dict[str, Any], nodes: list[str]
) -> tuple[list[str], list[str]]:
    """Return the section names of the schema node reached by ``nodes``."""
    current: Any = (
        schema.get("schema") if isinstance(schema.get("schema"), dict) else schema
    )
    for name in nodes:
        children = current.get("nodes") if isinstance(current, dict) else None
        if not isinstance(children, list):
            return [], []
        current = next(
            (c for c in children if isinstance(c, dict) and node_title(c) == name), None
        )
        if current is None:
            return [], []
    if (
        not nodes
        and isinstance(current, dict)
        and isinstance(current.get("nodes"), list)
    ):
        # A complex book's rows without a node name are its default node's.
        current = next(
            (
                c
                for c in current["nodes"]
                if isinstance(c, dict) and node_title(c) == ""
            ),
            None,
        )
    if not isinstance(current, dict):
        return [], []
    return (
        [str(n) for n in current.get("sectionNames") or []],
        [str(n) for n in current.get("heSectionNames") or []],
    )


def section_names(
    title: str, category: str, depth: int, talmud: bool, info: dict[str, TitleInfo]
) -> list[str]:
    """Return a staged book's section names: from its schema, else by category."""
    entry, nodes = _lookup(title, info)
    if entry is not None and entry.schema:
        names, _ = _node_names(entry.schema, nodes)
        if len(names) == depth:
            return names
    top = category_key(category.split("/")[0]) if category else ""
    base = (
        ["Daf", "Line"] if talmud else _DEFAULT_NAMES.get(top, ["Chapter", "Paragraph"])
    )
    if depth <= len(base):
        return base[:depth] if depth > 1 or talmud else ["Paragraph"]
    return [*base, *["Comment"] * (depth - len(base))]


def _place(root: list[Any], positions: tuple[int, ...], text: str) -> None:
    """Put ``text`` at 1-based ``positions`` in nested lists, padding gaps."""
    node = root
    for depth, position in enumerate(positions):
        last = depth == len(positions) - 1
        while len(node) < position:
            node.append("" if last else [])
        if last:
            node[position - 1] = text
        else:
            if not isinstance(node[position - 1], list):
                node[position - 1] = []
            node = node[position - 1]


def staged_text_files(
    staging: DumpStaging,
    title: str,
    category: str,
    info: dict[str, TitleInfo],
    source: Path,
) -> list[TextFile]:
    """Rebuild the chosen Hebrew and English versions of one staged book."""
    entry, _ = _lookup(title, info)
    own = info.get(title)
    categories = (entry.categories if entry else []) or [
        c for c in category.split("/") if c
    ]
    chosen = choose_dump_versions(staging.versions(title))
    files: list[TextFile] = []
    for lang, version in sorted(chosen.items()):
        text: list[Any] = []
        talmud = False
        depth = 0
        digest = hashlib.sha256()
        for positions, is_talmud, segment in staging.segments(title, lang, version):
            _place(text, positions, segment)
            talmud = talmud or is_talmud
            depth = max(depth, len(positions))
            digest.update(f"{positions}\x00{segment}\x00".encode())
        names = section_names(title, category, depth, talmud, info)
        he_title = (own.he_title if own else "") or title
        files.append(
            TextFile(
                path=source,
                title=title,
                he_title=he_title,
                language=lang,
                categories=categories,
                version_title=version,
                version_source="",
                license="unknown",
                section_names=names,
                text=text,
                digest=digest.hexdigest(),
            )
        )
    return files
