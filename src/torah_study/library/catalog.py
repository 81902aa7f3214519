"""Titles, aliases and the shape of every book in the ingested library.

The catalog is written by ingestion and read by everything that parses refs, so
"Genesis 51:1" can be rejected with "Genesis has 50 chapters" instead of
returning nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torah_study.library.aliases import skeleton, usable
from torah_study.library.categories import category_key, same_category
from torah_study.library.files import atomic_write_text
from torah_study.library.hebrew import strip_marks
from torah_study.library.refs import (
    Ref,
    RefError,
    daf_to_position,
    from_hebrew_numeral,
    position_to_daf,
)

Shape = list[Any]  # nested lists whose leaves are segment counts
# Next to the catalog: the titles of Sefaria's table of contents, English and
# Hebrew, so that a question naming a work the library lacks can be answered so.
OUTSIDE_TITLES_FILE = "outside-titles.json"

_EN_ADDRESS = r"\d+[ab]?(?:[:.]\d+)*(?:\s*[-\u2013]\s*\d+[ab]?(?:[:.]\d+)*)?"
# Gershayim may be typed as two apostrophes ("י''ח"), so up to two marks.
_HE_NUM = "[\u05d0-\u05ea]{1,4}[\u05f3\u05f4\"'\u2019\u201d]{0,2}[\u05d0-\u05ea]?"
# An amud after a daf number: "." or ":", 'ע"א' / 'ע"ב', or "עמוד א" / "עמוד ב".
_HE_AMUD = (
    r"(?:[.:]|\s+\u05e2[\"\u05f4']?[\u05d0\u05d1]"
    r"|\s+\u05e2\u05de\u05d5\u05d3\s+[\u05d0\u05d1])"
)
# A Hebrew address: "א:א" and "א, ב" (chapter and verse) are tried before an
# amud mark, because "א:" alone would otherwise read as amud b of a daf.
_HE_ADDRESS = (
    rf"(?:\u05d3\u05e3\s+)?{_HE_NUM}"
    rf"(?:(?:\s*[:,]\s*{_HE_NUM})+|{_HE_AMUD}(?:\s+{_HE_NUM}(?=\s|$|[?.!,]))?)?"
    rf"(?:\s*-\s*{_HE_NUM}(?:\s*[:,]\s*{_HE_NUM})*)?"
)


_EN_RANGE = re.compile(
    r"(?P<start>\d+[ab]?(?:[:.]\d+)*)"
    r"(?:\s*[-\u2013]\s*(?P<end>\d+[ab]?(?:[:.]\d+)*))?"
)


def read_toc_titles(export_dir: Path) -> list[tuple[str, str, str]]:
    """Return (English, Hebrew, top category) for each title of the contents."""
    path = export_dir / "table_of_contents.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    titles: list[tuple[str, str, str]] = []

    def walk(node: Any, top: str) -> None:
        if isinstance(node, list):
            for child in node:
                walk(child, top)
        elif isinstance(node, dict):
            if isinstance(node.get("category"), str):
                walk(node.get("contents", []), top or node["category"])
            elif isinstance(node.get("title"), str):
                titles.append((node["title"], str(node.get("heTitle") or ""), top))

    walk(data, "")
    return titles


def title_key(title: str) -> str:
    """Return the form titles are compared in: casefolded, no marks or quotes."""
    plain = strip_marks(title).casefold()
    plain = re.sub("[\"'\u05f3\u05f4\u2019\u201c\u201d.]", "", plain)
    return re.sub(r"[\s_,]+", " ", plain).strip()


@dataclass
class Book:
    """One title of the library and the structure of its text."""

    title: str
    he_title: str
    categories: list[str]
    section_names: list[str]
    he_section_names: list[str] = field(default_factory=list)
    talmud: bool = False
    shape: Shape = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    base_title: str | None = None
    commentator: str | None = None
    order: int = 0

    @property
    def depth(self) -> int:
        return len(self.section_names)

    def ref(
        self, start: tuple[int, ...] = (), end: tuple[int, ...] | None = None
    ) -> Ref:
        return Ref(self.title, start, end, talmud=self.talmud)


class Catalog:
    """All books by title and alias, with ref parsing and validation."""

    def __init__(self, books: Iterable[Book] = ()) -> None:
        self.books: dict[str, Book] = {}
        self._keys: dict[str, str] = {}
        self._finder: re.Pattern[str] | None = None
        self._mentions: re.Pattern[str] | None = None
        # Spelling-insensitive keys of English and transliterated names; a key
        # shared by two books maps to None and identifies neither.
        self._skeletons: dict[str, str | None] = {}
        self._outside: dict[str, tuple[str, str]] = {}
        self._outside_by_key: dict[str, tuple[str, str]] = {}
        self._outside_finder: re.Pattern[str] | None = None
        self._commentator_patterns: dict[str, re.Pattern[str]] | None = None
        for book in books:
            self.add(book)

    def add(self, book: Book) -> None:
        self.books[book.title] = book
        for name in (book.title, book.he_title, *book.aliases):
            key = title_key(name)
            # The book's own title wins over another book's alias.
            if key and (key not in self._keys or name == book.title):
                self._keys[key] = book.title
            bones = skeleton(name) if name.isascii() else ""
            if usable(bones, before_address=True):
                known = self._skeletons.get(bones, book.title)
                self._skeletons[bones] = book.title if known == book.title else None
        self._finder = None
        self._mentions = None
        self._commentator_patterns = None

    def __contains__(self, title: str) -> bool:
        return title in self.books

    def __len__(self) -> int:
        return len(self.books)

    def __iter__(self) -> Iterator[Book]:
        return iter(self.books.values())

    # Persistence -----------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the books to ``path`` atomically, for processes that reload it."""
        payload = [asdict(book) for book in self.books.values()]
        atomic_write_text(path, json.dumps(payload, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Catalog:
        if not path.exists():
            raise FileNotFoundError(
                f"No catalog at {path}: run `torah-study ingest` first."
            )
        data = json.loads(path.read_text(encoding="utf-8"))
        catalog = cls(Book(**item) for item in data)
        outside = path.with_name(OUTSIDE_TITLES_FILE)
        if outside.exists():
            rows = json.loads(outside.read_text(encoding="utf-8"))
            catalog.set_outside([str(value) for value in row] for row in rows)
        return catalog

    # Lookup ----------------------------------------------------------------

    def book(self, title: str) -> Book:
        """Return the book for a title or alias, in English or Hebrew."""
        book = self.find_book(title)
        if book is None:
            raise RefError(f"Unknown book {title!r}: it is not in the library.")
        return book

    def find_book(self, title: str, before_address: bool = False) -> Book | None:
        """Return the book for a title or alias in any common spelling, or None.

        ``before_address`` accepts shorter spelling keys, for a name that is
        followed by a chapter or daf and so is surely meant as a title.
        """
        found = self._keys.get(title_key(title))
        if found is None and title.isascii():
            bones = skeleton(title)
            if usable(bones, before_address):
                found = self._skeletons.get(bones)
        return self.books[found] if found else None

    def resolve_filters(
        self, books: Iterable[str], categories: Iterable[str]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Map book aliases to titles and categories to their stored spelling.

        Raises RefError naming the first book or category the library lacks.
        """
        titles = []
        for name in books:
            book = self.find_book(name)
            if book is None:
                raise RefError(f"Unknown book {name!r} in the filter.")
            titles.append(book.title)
        names = []
        for name in categories:
            fallback = {"halacha": "Halakhah", "talmud bavli": "Bavli"}
            found = self.stored_category(name) or fallback.get(title_key(name))
            if found is None:
                raise RefError(f"Unknown category {name!r} in the filter.")
            names.append(found)
        return tuple(titles), tuple(names)

    def stored_category(self, name: str) -> str | None:
        """Return the library's spelling of a category ("Tanach" for "Tanakh").

        Exports spell some categories differently, so the name is matched
        through :func:`category_key` and a few common alternatives.
        """
        known = {
            category_key(title_key(c)): c
            for b in self.books.values()
            for c in b.categories
        }
        key = category_key(title_key(name))
        aliases = {"halacha": "halakhah", "talmud bavli": "bavli"}
        return known.get(key) or known.get(aliases.get(key, ""))

    def books_in(self, name: str) -> list[Book]:
        """Return the books whose title is ``name`` or whose categories include it."""
        key = title_key(name)
        return [
            book
            for book in self.books.values()
            if title_key(book.title) == key
            or any(same_category(title_key(c), key) for c in book.categories)
        ]

    def commentary(self, commentator: str, base_title: str) -> Book | None:
        return self.books.get(f"{commentator} on {base_title}")

    def commentators(self) -> set[str]:
        """Names X of the "X on Y" titles whose Y is a book of the library.

        Titles such as "Mishneh Torah, Rest on a Holiday" contain " on " but
        comment on nothing, so they name no commentator.
        """
        return {
            b.commentator
            for b in self.books.values()
            if b.commentator and b.base_title in self.books
        }

    def set_outside(self, titles: Iterable[Sequence[str]]) -> None:
        """Record works Sefaria lists that this library does not hold.

        ``titles`` gives the English title, the Hebrew title and the top
        category of each work of the export's table of contents. A question
        that names one of them is about a work the library cannot answer
        from. "X on Y" titles also record X, and "Sefer X" also X, the names
        learners use for them. Books of Tanakh, Mishnah and Talmud (not their
        commentaries) are left out: their names are also people and subjects
        ("Joshua", "Shabbat"), and a library without them was limited on
        purpose.
        """
        names: dict[str, tuple[str, str]] = {}
        commentators = self.commentators()
        # A name inside a held title is also a subject ("Shabbat" in "Mishnah
        # Shabbat"): a question using it is about the subject, not the work.
        held = " | ".join(
            title_key(name)
            for book in self.books.values()
            for name in (book.title, book.he_title)
        )
        for english, hebrew, *rest in titles:
            if self.find_book(english) is not None:
                continue
            if rest and rest[0] in _SUBJECT_CATEGORIES and " on " not in english:
                continue
            short = [english, hebrew]
            if " on " in english:
                author = english.split(" on ")[0]
                if author not in commentators:
                    short.append(author)
                    short.append(hebrew.split(" \u05e2\u05dc ")[0])
            if english.startswith("Sefer "):
                short.append(english.removeprefix("Sefer "))
            if hebrew.startswith("\u05e1\u05e4\u05e8 "):
                short.append(hebrew.removeprefix("\u05e1\u05e4\u05e8 "))
            for name in short:
                key = title_key(name)
                if not name or len(key.replace(" ", "")) < 4:
                    continue
                if re.search(
                    rf"(?<![\w\u05d0-\u05ea]){re.escape(key)}(?![\w\u05d0-\u05ea])",
                    held,
                ):
                    continue
                names.setdefault(
                    name,
                    (english.split(" on ")[0], hebrew.split(" \u05e2\u05dc ")[0]),
                )
        self._outside = names
        self._outside_by_key = {title_key(name): work for name, work in names.items()}
        self._outside_finder = None

    def outside_work(self, text: str, hebrew: bool = False) -> str | None:
        """Return a work the question names that Sefaria has but this library lacks.

        English names must be capitalised. A one-word Hebrew name counts only
        after a word that introduces a work (ספר, לפי, אומר, כותב, מפרש).
        "Sefer X" or "the Book of X" naming no title at all also counts, with
        X as the work. With ``hebrew`` the work's Hebrew name is returned.
        """
        if self._outside and self._outside_finder is None:
            ordered = sorted(self._outside, key=len, reverse=True)
            self._outside_finder = re.compile(
                "(?<![\\w\u05d0-\u05ea])"
                f"(?P<lead>{_HE_WORK_LEAD}\\s+)?[\u05d5\u05d1\u05dc\u05de\u05d4]?"
                f"(?P<name>{'|'.join(_name_pattern(n) for n in ordered)})"
                "(?![\\w\u05d0-\u05ea])"
            )
        if self._outside_finder is not None:
            # Names inside a title in the library do not count: "Rosh" (a
            # commentator outside it) inside "Rosh Hashanah".
            held = [m.span("name") for m in self._mention_finder().finditer(text)]
            for match in self._outside_finder.finditer(text):
                start, end = match.span("name")
                if any(a <= start and end <= b for a, b in held):
                    continue
                name = match.group("name")
                is_hebrew = _HEBREW_LETTER.search(name) is not None
                if is_hebrew and " " not in name and not match.group("lead"):
                    continue
                if self.find_book(name) is None:
                    # The match may spell quotes otherwise than the title does.
                    english, he_name = self._outside_by_key[title_key(name)]
                    return he_name if hebrew and he_name else english
        for match in _BOOK_OF.finditer(text):
            name = match.group("name")
            if name in _COMMON_BOOKS:
                continue
            if self.find_book(name) is None and self.find_book(f"Sefer {name}") is None:
                found = match.group(0).strip()
                return found[:1].upper() + found[1:]
        return None

    def mentioned(self, text: str) -> tuple[list[str], list[str]]:
        """Return the book titles and commentators a question names without a ref.

        "What does Hilchot Teshuvah say about confession?" names "Mishneh
        Torah, Repentance"; "How does Rashi explain…" names the commentator
        Rashi. English names must be capitalised as titles are, and a
        one-word Hebrew title counts only after ספר, מסכת or פרשת, because
        titles such as שמות and דברים are also common words.
        """
        books: list[str] = []
        for match in self._mention_finder().finditer(text):
            name = match.group("name")
            book = self.find_book(name)
            if book is None or book.title in books:
                continue
            hebrew = _HEBREW_LETTER.search(name) is not None
            if hebrew and " " not in name.strip() and not match.group("lead"):
                continue
            if not hebrew and not name[:1].isupper():
                continue
            books.append(book.title)
        # Transliterations in a spelling no alias lists ("Hilchos Teshuvah").
        for match in _LATIN_NAMES.finditer(text):
            words = match.group().split()
            for size in range(min(len(words), 4), 0, -1):
                for start in range(len(words) - size + 1):
                    name = " ".join(words[start : start + size])
                    book = self.find_book(name)
                    # Short aliases ("Dan", "Ex") are also ordinary words.
                    if book is None or (len(name) < 4 and name != book.title):
                        continue
                    if not book.commentator and book.title not in books:
                        books.append(book.title)
        commentators = [
            name
            for name, pattern in self._commentator_names().items()
            if pattern.search(text)
        ]
        return books, sorted(set(commentators))

    def _mention_finder(self) -> re.Pattern[str]:
        if self._mentions is None:
            names: set[str] = set()
            for book in self.books.values():
                if book.commentator:
                    continue
                names.update((book.title, book.he_title, *book.aliases))
            usable = [n for n in names if len(title_key(n).replace(" ", "")) >= 4]
            ordered = sorted(usable, key=len, reverse=True)
            alternatives = "|".join(_name_pattern(n) for n in ordered)
            self._mentions = re.compile(
                "(?<![\\w\u05d0-\u05ea])"
                "(?P<lead>(?:\u05d1?(?:\u05e1\u05e4\u05e8|\u05de\u05e1\u05db\u05ea"
                "|\u05e4\u05e8\u05e9\u05ea)\\s+))?"
                "[\u05d5\u05d1\u05dc\u05de\u05d4]?"
                f"(?P<name>{alternatives})(?![\\w\u05d0-\u05ea])"
            )
        return self._mentions

    def _commentator_names(self) -> dict[str, re.Pattern[str]]:
        """Map each commentator to a pattern for its English or Hebrew name."""
        if self._commentator_patterns is None:
            spellings: dict[str, set[str]] = {}
            for book in self.books.values():
                if not book.commentator or book.base_title not in self.books:
                    continue
                names = spellings.setdefault(book.commentator, {book.commentator})
                he_name = book.he_title.split(" \u05e2\u05dc ")[0]
                if he_name and he_name != book.he_title:
                    names.add(he_name)
            self._commentator_patterns = {
                commentator: re.compile(
                    "(?<![\\w\u05d0-\u05ea])[\u05d5\u05dc\u05de\u05d4\u05d1\u05e9]?(?:"
                    + "|".join(_name_pattern(n) for n in sorted(names, key=len))
                    + ")(?![\\w\u05d0-\u05ea])",
                    re.IGNORECASE,
                )
                for commentator, names in spellings.items()
            }
        return self._commentator_patterns

    def commentaries_by(self, commentators: Iterable[str]) -> list[str]:
        """Return the titles of every commentary written by ``commentators``."""
        wanted = set(commentators)
        return [b.title for b in self.books.values() if b.commentator in wanted]

    # Parsing ---------------------------------------------------------------

    def parse(self, text: str, *, validate: bool = True) -> Ref:
        """Parse an English or Hebrew ref such as "Genesis 1:1-3" or "ברכות ב."."""
        # Direction marks come along when Hebrew is copied from a web page.
        cleaned = " ".join(_DIRECTION_MARKS.sub("", text).split())
        if not cleaned:
            raise RefError("Empty ref: expected something like 'Genesis 1:1'.")
        book, address = self._split_title(cleaned)
        ref = self._parse_address(book, address)
        if validate:
            self.validate(ref)
        return ref

    def _split_title(self, text: str) -> tuple[Book, str]:
        words = text.split(" ")
        for cut in range(len(words), 0, -1):
            book = self.find_book(" ".join(words[:cut]))
            if book is not None:
                return book, " ".join(words[cut:])
        raise RefError(
            f"Unknown book in ref {text!r}: no title in the library matches."
        )

    def _parse_address(self, book: Book, address: str) -> Ref:
        address = address.strip()
        if not address:
            return book.ref()
        if re.search("[\u05d0-\u05ea]", address):
            return _parse_hebrew_address(book, address)

        match = _EN_RANGE.fullmatch(address)
        if not match:
            raise RefError(
                f"Invalid address {address!r} for {book.title}: expected numbers "
                "separated by ':' such as 1:1 or 2a:3."
            )
        start = _parse_english_parts(book, match.group("start").replace(".", ":"))
        end_text = match.group("end")
        if end_text is None:
            return book.ref(start)

        # The end may leave out leading parts it shares with the start:
        # "Genesis 1:1-3" ends at 1:3, "Berakhot 2a-3b" at 3b.
        end_parts = end_text.replace(".", ":").split(":")
        top_is_daf = book.talmud and len(end_parts) == len(start)
        end_tail = tuple(
            daf_to_position(p) if top_is_daf and i == 0 else _int(p, book)
            for i, p in enumerate(end_parts)
        )
        if len(end_tail) > len(start):
            raise RefError(
                f"Invalid range {address!r}: the end is deeper than the start."
            )
        end = start[: len(start) - len(end_tail)] + end_tail
        if end < start:
            raise RefError(
                f"Invalid range {address!r}: the end comes before the start."
            )
        return book.ref(start, end)

    # Validation ------------------------------------------------------------

    def validate(self, ref: Ref) -> None:
        """Raise RefError naming the limit when ``ref`` points past the text."""
        book = self.books[ref.book]
        if len(ref.start) > book.depth:
            raise RefError(
                f"{ref.normal()} is too deep: {book.title} refs have "
                f"{book.depth} parts ({', '.join(book.section_names)})."
            )
        for point in (ref.start, ref.last):
            self._validate_point(book, point)

    def _validate_point(self, book: Book, point: tuple[int, ...]) -> None:
        level: Any = book.shape
        for depth, position in enumerate(point):
            name = (book.section_names[depth] or "section").lower()
            where = book.ref(point[:depth]).normal()
            count = len(level) if isinstance(level, list) else int(level)
            if position < 1 or position > count:
                raise RefError(_out_of_range(book, depth, where, name, count, position))
            if isinstance(level, list):
                level = level[position - 1]
                if level in (0, []):
                    shown = book.ref(point[: depth + 1]).normal()
                    raise RefError(f"{shown} has no text in the library.")

    # Finding refs in questions ----------------------------------------------

    def find_refs(self, text: str) -> list[Ref | RefError]:
        """Return the refs named in free text, or the error explaining a bad one.

        Only a title followed by an address counts ("Genesis 1:1", "ברכות ב."),
        so a question that merely mentions a book is searched, not looked up.
        A commentator named before the ref ("What does Rashi say on Genesis
        1:5?") adds the commentary ref first.
        """
        found: list[Ref | RefError] = []
        taken: list[tuple[int, int]] = []
        for match in self._ref_finder().finditer(text):
            title = match.group("title")
            address = match.group("en") or match.group("he") or ""
            book = self.find_book(title)
            if book is None or not address.strip():
                continue
            if match.group("he") and not _looks_like_hebrew_address(address):
                continue
            taken.append(match.span())
            found.extend(self._resolve(book, address, text[: match.start()]))
        # Titles in a spelling no alias lists ("Bereshis 1:1", "Tehilim 23").
        for match in _LATIN_TITLE_REF.finditer(text):
            if any(start < match.end() and match.start() < end for start, end in taken):
                continue
            words = match.group("title").split()
            for cut in range(len(words)):
                book = self.find_book(" ".join(words[cut:]), before_address=True)
                if book is not None:
                    before = text[: match.start()] + " ".join(words[:cut])
                    found.extend(self._resolve(book, match.group("en"), before))
                    break
        return found

    def _resolve(self, book: Book, address: str, before: str) -> list[Ref | RefError]:
        try:
            ref = self._parse_address(book, address)
            self.validate(ref)
        except RefError as error:
            return [error]
        return [*self._commentary_refs(before, ref), ref]

    def _commentary_refs(self, before: str, ref: Ref) -> list[Ref | RefError]:
        refs: list[Ref | RefError] = []
        for commentator in sorted(self.commentators()):
            if not re.search(rf"\b{re.escape(commentator)}\b", before, re.IGNORECASE):
                continue
            commentary = self.commentary(commentator, ref.book)
            if commentary is None:
                refs.append(
                    RefError(f"{commentator} on {ref.book} is not in the library.")
                )
                continue
            try:
                candidate = commentary.ref(ref.start, ref.end)
                self.validate(candidate)
            except RefError as error:
                refs.append(error)
                continue
            refs.append(candidate)
        return refs

    def _ref_finder(self) -> re.Pattern[str]:
        if self._finder is None:
            names: set[str] = set()
            for book in self.books.values():
                names.update((book.title, book.he_title, *book.aliases))
            ordered = sorted((n for n in names if n), key=len, reverse=True)
            alternatives = "|".join(_name_pattern(n) for n in ordered)
            self._finder = re.compile(
                rf"(?<![\w\u05d0-\u05ea])[\u05d5\u05d1\u05dc\u05de\u05d4]?(?P<title>{alternatives})"
                rf"(?:\s+(?P<en>{_EN_ADDRESS})(?![\w])|\s+(?P<he>{_HE_ADDRESS}))",
                re.IGNORECASE,
            )
        return self._finder


# Capitalised Latin words followed by an English address: a title candidate
# for the spelling-insensitive lookup.
_LATIN_TITLE_REF = re.compile(
    r"(?<![\w])(?P<title>[A-Z][A-Za-z']+(?:\s+(?:[A-Z][A-Za-z']+|on|of))*)"
    rf"\s+(?P<en>{_EN_ADDRESS})(?![\w])"
)
_LATIN_NAMES = re.compile(r"[A-Z][A-Za-z']+(?:\s+(?:[A-Z][A-Za-z']+|on|of))*")
# "Sefer Orot HaGenuzim", "the Book of Jubal": a named book, in or out of the
# library.
_BOOK_OF = re.compile(
    r"\b(?:Sefer|[Tt]he [Bb]ook of) (?P<name>[A-Z][\w']*(?: [A-Z][\w']*)*)"
)
# Top categories of the table of contents whose titles are also people and
# subjects, never reported as works outside the library.
_SUBJECT_CATEGORIES = frozenset(["Tanakh", "Tanach", "Mishnah", "Talmud"])
# Words before a one-word Hebrew name that make it a work: ספר, לפי, אומר,
# אומרת, כותב, מפרש (with an optional ב before ספר).
_HE_WORK_LEAD = (
    "(?:\u05d1?\u05e1\u05e4\u05e8|\u05dc\u05e4\u05d9|\u05d0\u05d5\u05de\u05e8"
    "|\u05d0\u05d5\u05de\u05e8\u05ea|\u05db\u05d5\u05ea\u05d1|\u05de\u05e4\u05e8\u05e9)"
)
# "Sefer Torah" is a Torah scroll, not a book called Torah.
_COMMON_BOOKS = frozenset(["Torah"])
_DIRECTION_MARKS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_HEBREW_LETTER = re.compile("[\u05d0-\u05ea]")
_NAME_QUOTES = "\"'\u05f3\u05f4\u2019\u201d"


def _name_pattern(name: str) -> str:
    """Return a pattern for a title in which quote marks are optional and alike.

    "רש\"י על בראשית" then matches "רש״י על בראשית" and "רשי על בראשית", the
    forms a learner types and the verifier reads after removing gershayim.
    """
    parts = []
    for char in name:
        if char in _NAME_QUOTES:
            parts.append(f"[{re.escape(_NAME_QUOTES)}]?")
        else:
            parts.append(re.escape(char))
    return "".join(parts)


def _out_of_range(
    book: Book, depth: int, where: str, name: str, count: int, position: int
) -> str:
    if book.talmud and depth == 0:
        last = position_to_daf(count)
        asked = position_to_daf(position) if position >= 1 else str(position)
        return f"{book.title} has no daf {asked}: the tractate ends at {last}."
    plural = name if name.endswith("s") else f"{name}s"
    noun = name if count == 1 else plural
    return f"{where} has {count} {noun}; there is no {name} {position}."


def _int(text: str, book: Book) -> int:
    if not text.isdigit() or int(text) < 1:
        raise RefError(f"Invalid number {text!r} in a ref to {book.title}.")
    return int(text)


def _parse_english_parts(book: Book, text: str) -> tuple[int, ...]:
    parts = text.split(":")
    values: list[int] = []
    for i, part in enumerate(parts):
        if i == 0 and book.talmud:
            values.append(daf_to_position(part))
        elif re.fullmatch(r"\d+", part):
            values.append(_int(part, book))
        else:
            raise RefError(f"Invalid part {part!r} in a ref to {book.title}.")
    return tuple(values)


_STRICT_NUMERAL = re.compile(
    "^(?:\u05ea*[\u05e7-\u05ea]?)(?:\u05d8[\u05d5\u05d6]|[\u05d9-\u05e6]?[\u05d0-\u05d8]?)$"
)


def _looks_like_hebrew_address(address: str) -> bool:
    """Reject ordinary words that happen to follow a title ("בראשית ברא")."""
    for piece in re.split(r"[\s:,.\-]+", address):
        letters = re.sub("[\u05f3\u05f4\"'\u2019\u201d]", "", piece)
        if not letters or letters in ("\u05d3\u05e3", "\u05e2\u05de\u05d5\u05d3"):
            continue
        if letters in ("\u05e2\u05d0", "\u05e2\u05d1"):
            continue
        final_free = letters.translate(str.maketrans("ךםןףץ", "כמנפצ"))
        if not _STRICT_NUMERAL.match(final_free):
            return False
    # "כ, יב" (chapter, verse) is marked by its comma.
    has_mark = re.search("[\u05f3\u05f4\"':.,]|\u05d3\u05e3", address) is not None
    return has_mark or len(address.replace(" ", "")) <= 2


def _parse_hebrew_address(book: Book, address: str) -> Ref:
    text = address.replace("\u05d3\u05e3", " ").strip()
    if book.talmud:
        match = re.match(rf"({_HE_NUM}?)({_HE_AMUD})?\s*(.*)$", text)
        if not match or not match.group(1):
            raise RefError(f"Invalid Hebrew daf {address!r} for {book.title}.")
        number_text, amud, rest = match.group(1), match.group(2) or ".", match.group(3)
        amud_b = amud.strip().endswith((":", "\u05d1"))
        daf = from_hebrew_numeral(number_text.rstrip(".:"))
        parts = [daf_to_position(f"{daf}{'b' if amud_b else 'a'}")]
        parts.extend(from_hebrew_numeral(p) for p in re.split(r"[\s:,]+", rest) if p)
        return book.ref(tuple(parts))
    halves = [h.strip() for h in text.split("-")]
    start = tuple(from_hebrew_numeral(p) for p in re.split(r"[\s:,]+", halves[0]) if p)
    if len(halves) == 1:
        return book.ref(start)
    tail = tuple(from_hebrew_numeral(p) for p in re.split(r"[\s:,]+", halves[1]) if p)
    end = start[: len(start) - len(tail)] + tail
    if end < start:
        raise RefError(f"Invalid range {address!r}: the end comes before the start.")
    return book.ref(start, end)
