"""Spelling-insensitive keys for transliterated titles.

Learners write the same Hebrew title many ways: Bereishit, Bereshit,
Breishit, Beresheet, Bereshis; Hilchot Teshuvah, Hilkhot Teshuva, Hilchos
Teshuvah. The library's schemas list some of these spellings; ``skeleton``
maps all of them to one key, so that any spelling finds the book.

The key keeps the consonants of each word in order. First the letters that
transliterations swap are folded: kh and ch become x, tz and ts become z, ph
becomes f, w becomes v, k and q become c. The Ashkenazi final s after a
vowel ("Hilchos", "Bereshis") becomes t. Then doubled letters collapse, and
vowels, apostrophes and a silent h ("Teshuvah", "Tehillim") are dropped.
"""

from __future__ import annotations

import re
import unicodedata

_FOLDS = (
    ("kh", "x"),
    ("ch", "x"),
    ("tz", "z"),
    ("ts", "z"),
    ("ph", "f"),
    ("w", "v"),
    ("k", "c"),
    ("q", "c"),
)
_WORD = re.compile(r"[a-z]+|[0-9]+")
# A key shorter than this matches too many ordinary words to be trusted; a
# name followed by an address ("Shemos 20:12") may be one letter shorter.
MIN_SKELETON = 4
MIN_SKELETON_BEFORE_ADDRESS = 3


def _word_skeleton(word: str) -> str:
    if len(word) > 3 and word[-1] == "s" and word[-2] in "aeiou":
        word = word[:-1] + "t"
    if word.endswith("h") and len(word) > 2 and word[-2] in "aeiou":
        word = word[:-1]
    for old, new in _FOLDS:
        word = word.replace(old, new)
    if word.isdigit():
        return word
    consonants = re.sub("[aeiouy'h]", "", word[1:])
    letters = word[:1] + consonants
    return re.sub(r"(.)\1+", r"\1", letters)


def skeleton(name: str) -> str:
    """Return the spelling-insensitive key of a Latin-letter title."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = _WORD.findall(plain.lower().replace("'", ""))
    return " ".join(_word_skeleton(w) for w in words)


def usable(key: str, before_address: bool = False) -> bool:
    """Tell whether a skeleton is specific enough to identify a title."""
    least = MIN_SKELETON_BEFORE_ADDRESS if before_address else MIN_SKELETON
    return len(key.replace(" ", "")) >= least
