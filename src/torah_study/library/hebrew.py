"""Hebrew and English text normalisation for keyword search.

The index keeps the original text for display and searches a normalised copy:
niqqud and te'amim removed, maqaf as a space, gershayim and quotes unified, and
common one-letter prefixes split off so that "והארץ" also matches "ארץ".
"""

from __future__ import annotations

import html
import re

# Punctuation inside the Hebrew block that separates words: maqaf, paseq,
# sof pasuq and nun hafukha. They become spaces before the marks are deleted.
_WORD_SEPARATORS = dict.fromkeys(map(ord, "\u05be\u05c0\u05c3\u05c6"), " ")
_MARKS = re.compile("[\u0591-\u05c7]")
_PARAGRAPH_MARKS = re.compile(r"[({\[]\s*[\u05e4\u05e1]\s*[)}\]]")
_QUOTES = "\"'\u05f3\u05f4\u2018\u2019\u201c\u201d\u00b4`"
_QUOTE_INSIDE_HEBREW = re.compile(
    f"(?<=[\u05d0-\u05ea])[{_QUOTES}]+(?=[\u05d0-\u05ea])"
)
_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")
_TOKEN = re.compile(r"[\u05d0-\u05ea]+|[a-z0-9]+(?:'[a-z]+)?")
_HEBREW_LETTERS = re.compile("[\u05d0-\u05ea]")

# Early-modern English of the 1917 JPS and similar translations, mapped to the
# forms a learner types, so "love your neighbor" matches "love thy neighbour".
_ENGLISH_FORMS = {
    "thy": "your", "thine": "your", "thee": "you", "thou": "you", "ye": "you",
    "thyself": "yourself", "yourselves": "yourself", "shalt": "shall",
    "hast": "have", "hath": "has", "doth": "does", "dost": "do", "saith": "says",
    "art": "are", "wilt": "will", "unto": "to", "neighbour": "neighbor",
    "neighbours": "neighbors", "honour": "honor", "honoured": "honored",
    "labour": "labor", "favour": "favor", "behaviour": "behavior",
    "sabbath": "shabbat", "sabbaths": "shabbat", "shabbos": "shabbat",
}  # fmt: skip
# Prefix letters that attach to a word (and, the, in, as, to, from, that) and
# the combinations of them that occur in the texts. Only these are split off:
# stripping any run of such letters would turn "המלאכה" into "לאכה".
PREFIXES = (
    "\u05d5", "\u05d4", "\u05d1", "\u05db", "\u05dc", "\u05de", "\u05e9",
    "\u05d5\u05d4", "\u05d5\u05d1", "\u05d5\u05db", "\u05d5\u05dc",
    "\u05d5\u05de", "\u05d5\u05e9", "\u05e9\u05d4", "\u05e9\u05d1",
    "\u05e9\u05dc", "\u05e9\u05de", "\u05de\u05d4", "\u05db\u05e9",
    "\u05d5\u05db\u05e9", "\u05d5\u05e9\u05d1",
)  # fmt: skip
_MIN_STEM_LETTERS = 3


def strip_html(text: str) -> str:
    """Remove tags and decode entities; ``<br>`` becomes a space."""
    without_tags = _TAG.sub(" ", text)
    return _SPACES.sub(" ", html.unescape(without_tags)).strip()


def strip_marks(text: str) -> str:
    """Remove niqqud and te'amim, turning maqaf and sof pasuq into spaces."""
    return _MARKS.sub("", text.translate(_WORD_SEPARATORS))


def unify_quotes(text: str) -> str:
    """Drop gershayim, geresh and quotes inside Hebrew words (רש״י → רשי)."""
    return _QUOTE_INSIDE_HEBREW.sub("", text)


def contains_hebrew(text: str) -> bool:
    return _HEBREW_LETTERS.search(text) is not None


def hebrew_ratio(text: str) -> float:
    """Return the share of letters in ``text`` that are Hebrew (0.0 for no letters)."""
    hebrew = len(_HEBREW_LETTERS.findall(text))
    latin = len(re.findall("[A-Za-z]", text))
    total = hebrew + latin
    return hebrew / total if total else 0.0


def prefix_variants(word: str) -> list[str]:
    """Return ``word`` without each known prefix ("והארץ" → "הארץ", "ארץ").

    A variant must keep at least three letters, so short words like "משה" are
    left alone. The variants are added next to the word, never in its place,
    because a leading letter is often part of the root.
    """
    variants: list[str] = []
    for prefix in PREFIXES:
        stem = word[len(prefix) :]
        if word.startswith(prefix) and len(stem) >= _MIN_STEM_LETTERS:
            variants.append(stem)
    return variants


def tokenize(text: str) -> list[str]:
    """Split normalised text into Hebrew and lowercase Latin tokens."""
    return _TOKEN.findall(text)


def normalize(text: str) -> str:
    """Return the display-free form used for matching quotes and comparing text."""
    plain = strip_html(text)
    plain = _PARAGRAPH_MARKS.sub(" ", plain)
    plain = unify_quotes(strip_marks(plain)).lower()
    plain = plain.replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(_ENGLISH_FORMS.get(token, token) for token in tokenize(plain))


def search_text(text: str) -> str:
    """Return the keyword-search copy of ``text``: normalised, with prefix variants."""
    tokens: list[str] = []
    for token in normalize(text).split():
        tokens.append(token)
        if contains_hebrew(token):
            tokens.extend(prefix_variants(token))
    return " ".join(tokens)
