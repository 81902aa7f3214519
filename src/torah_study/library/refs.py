"""Refs: exact addresses of texts, such as "Genesis 1:1" or "Berakhot 2a:3".

A ref stores 1-based array positions. For Talmud tractates the first position
counts amudim from 1a, so daf 2a is position 3 and daf 2b is position 4, which
matches how the export stores tractates (the arrays start at the absent 1a).
Titles are resolved by the catalog; this module handles the numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GEMATRIA = {
    "א": 1, "ב": 2, "ג": 3, "ד": 4, "ה": 5, "ו": 6, "ז": 7, "ח": 8, "ט": 9,
    "י": 10, "כ": 20, "ך": 20, "ל": 30, "מ": 40, "ם": 40, "נ": 50, "ן": 50,
    "ס": 60, "ע": 70, "פ": 80, "ף": 80, "צ": 90, "ץ": 90,
    "ק": 100, "ר": 200, "ש": 300, "ת": 400,
}  # fmt: skip
_ONES = "\u05d0\u05d1\u05d2\u05d3\u05d4\u05d5\u05d6\u05d7\u05d8"
_TENS = "\u05d9\u05db\u05dc\u05de\u05e0\u05e1\u05e2\u05e4\u05e6"
_HUNDREDS = "\u05e7\u05e8\u05e9\u05ea"
_NUMERAL_PUNCTUATION = re.compile("[\"'\u05f3\u05f4\u2019\u201d]")


class RefError(ValueError):
    """Raised for a ref that cannot be parsed or does not exist in the library."""


@dataclass(frozen=True, order=True)
class Ref:
    """A book and a position or range within it.

    ``start`` may be shorter than the book's depth: ``Genesis 1`` is the whole
    chapter and ``Genesis`` (empty ``start``) the whole book. ``end`` is set
    only for ranges and has the same length as ``start``.
    """

    book: str
    start: tuple[int, ...] = ()
    end: tuple[int, ...] | None = None
    talmud: bool = False

    @property
    def is_range(self) -> bool:
        return self.end is not None and self.end != self.start

    @property
    def last(self) -> tuple[int, ...]:
        return self.end if self.end is not None else self.start

    def normal(self) -> str:
        """Format the canonical English ref ("Genesis 1:1-3", "Berakhot 2a:3")."""
        if not self.start:
            return self.book
        text = f"{self.book} {self._address(self.start)}"
        if self.is_range:
            assert self.end is not None
            shared = _shared_prefix_length(self.start, self.end)
            if shared == len(self.start):
                return text
            shared = min(shared, len(self.start) - 1)
            tail = self.end[shared:]
            text += "-" + self._address(tail, first_is_top=shared == 0)
        return text

    def hebrew(self, he_title: str) -> str:
        """Format the ref in Hebrew: "בראשית א:א", "ברכות ב. ג" for Talmud."""
        if not self.start:
            return he_title
        text = f"{he_title} {self._he_address(self.start)}"
        if self.is_range:
            assert self.end is not None
            shared = min(
                _shared_prefix_length(self.start, self.end), len(self.start) - 1
            )
            tail = self.end[shared:]
            text += "-" + self._he_address(tail, first_is_top=shared == 0)
        return text

    def section(self, depth: int) -> Ref:
        """Return the section that contains this ref in a book of ``depth`` levels.

        A segment ref loses its last level ("Genesis 1:3" gives "Genesis 1",
        "Berakhot 2a:3" gives "Berakhot 2a"), and a range of segments gives
        the range of their sections ("Genesis 1:31-2:3" gives "Genesis 1-2").
        A ref above segment level is already a section and is returned as is.
        """
        if not self.start or len(self.start) < depth:
            return self
        end = self.end[:-1] if self.end is not None else None
        return Ref(self.book, self.start[:-1], end, self.talmud)

    def contains(self, other: Ref) -> bool:
        """Tell whether every segment of ``other`` lies inside this ref."""
        if other.book != self.book:
            return False
        return _within(self.start, self.last, other.start) and _within(
            self.start, self.last, other.last
        )

    def _address(self, parts: tuple[int, ...], *, first_is_top: bool = True) -> str:
        pieces = [str(p) for p in parts]
        if self.talmud and first_is_top:
            pieces[0] = position_to_daf(parts[0])
        return ":".join(pieces)

    def _he_address(self, parts: tuple[int, ...], *, first_is_top: bool = True) -> str:
        if self.talmud and first_is_top:
            daf = position_to_daf(parts[0])
            head = to_hebrew_numeral(int(daf[:-1])) + ("." if daf[-1] == "a" else ":")
            rest = [to_hebrew_numeral(p) for p in parts[1:]]
            return " ".join([head, *rest])
        return ":".join(to_hebrew_numeral(p) for p in parts)


def _shared_prefix_length(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def _within(
    low: tuple[int, ...], high: tuple[int, ...], point: tuple[int, ...]
) -> bool:
    """Compare positions of different depths by their common prefix."""
    depth = min(len(low), len(point))
    if point[:depth] < low[:depth]:
        return False
    depth = min(len(high), len(point))
    return point[:depth] <= high[:depth]


def daf_to_position(daf: str) -> int:
    """Convert "2a" to 3 and "2b" to 4; a bare number means amud a."""
    match = re.fullmatch(r"(\d+)([ab]?)", daf.strip().lower())
    if not match or int(match.group(1)) < 1:
        raise RefError(f"Invalid daf {daf!r}: expected a number and an amud, like 2a.")
    number = int(match.group(1))
    return 2 * number - 1 + (1 if match.group(2) == "b" else 0)


def position_to_daf(position: int) -> str:
    if position < 1:
        raise RefError(f"Invalid daf position {position}: positions start at 1.")
    number = (position + 1) // 2
    return f"{number}{'a' if position % 2 else 'b'}"


def from_hebrew_numeral(text: str) -> int:
    """Read a Hebrew numeral by gematria ("טו" → 15, "קמ״ד" → 144)."""
    letters = _NUMERAL_PUNCTUATION.sub("", text.strip())
    if not letters or any(ch not in _GEMATRIA for ch in letters):
        raise RefError(f"Invalid Hebrew numeral {text!r}.")
    return sum(_GEMATRIA[ch] for ch in letters)


def to_hebrew_numeral(number: int) -> str:
    """Write ``number`` (1–999) in Hebrew letters, with טו and טז for 15 and 16."""
    if not 1 <= number <= 999:
        raise RefError(f"Cannot write {number} as a Hebrew numeral: expected 1 to 999.")
    hundreds, rest = divmod(number, 100)
    letters = ""
    while hundreds > 4:
        letters += _HUNDREDS[3]
        hundreds -= 4
    if hundreds:
        letters += _HUNDREDS[hundreds - 1]
    if rest in (15, 16):
        return letters + ("טו" if rest == 15 else "טז")
    tens, ones = divmod(rest, 10)
    if tens:
        letters += _TENS[tens - 1]
    if ones:
        letters += _ONES[ones - 1]
    return letters


def is_hebrew_numeral(text: str) -> bool:
    letters = _NUMERAL_PUNCTUATION.sub("", text)
    return bool(letters) and all(ch in _GEMATRIA for ch in letters)
