"""Conversation titles made from the user's first message that has content.

``make_title`` applies these rules in order:

1. Runs of whitespace become one space. Control characters, invisible
   formatting characters (bidi marks, zero-width space, byte order mark) and
   combining marks with no letter before them are dropped. Quotes, brackets
   and punctuation around the text are trimmed. A closing bracket or quote
   that matches an opening one inside the text is kept. So are a geresh or
   gershayim ending a Hebrew word and the "." or ":" of a Hebrew daf ref at
   the end ("ברכות ב:").
2. A message with no letters or digits, or one made only of greetings and
   pleasantries ("hi", "hello", "good morning", "thanks", "shalom aleichem",
   "שלום", "בוקר טוב", "תודה רבה" …) with any punctuation or emoji, gets no
   title: the conversation stays untitled until a message with content
   arrives. A greeting before the content ("Shalom! What does Rashi say on
   Genesis 1:1?") or a pleasantry after it ("… Thanks!") is removed when a
   punctuation mark or emoji separates it from the content, or, for a leading
   greeting, when a question word follows it ("Hi what is…").
3. A message that is only a ref with an address ("gen 1:1", "בראשית א:א",
   "ברכות ב.") becomes the canonical ref in the message's own script: the
   English form for Latin script and the Hebrew form for Hebrew script. This
   needs a catalog, and a ref that does not parse or does not exist in the
   library is treated as ordinary text. A bare book title stays text, because
   aliases such as "Dan" are also ordinary words.
4. Any other message is its own title, in its own language and script. If it
   is longer than ``limit`` characters (code points), it is cut at the last
   space at or before the limit, punctuation left at the cut is removed, and
   "…" is appended, so a title has at most ``limit + 1`` characters. A first
   word longer than the limit is cut at the last character boundary at or
   before the limit that does not separate a letter from its combining marks
   (niqqud, accents) or split an emoji sequence.
5. A lower-case Latin first character is upper-cased, and Hebrew is left as
   it is.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from torah_study.library.catalog import Catalog
from torah_study.library.hebrew import contains_hebrew, strip_marks
from torah_study.library.refs import RefError

ELLIPSIS = "\u2026"
DEFAULT_LIMIT = 60

# Invisible format characters that only affect display: soft hyphen, Arabic
# letter mark, zero-width space, left-to-right and right-to-left marks, bidi
# embeddings and isolates, word joiner and byte order mark. Zero-width joiner
# and non-joiner stay because emoji sequences and some scripts need them.
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_HEBREW_LETTER = re.compile("[\u05d0-\u05ea]")
# One-letter prefixes for "and", "in", "to", "from" and "the".
_HEBREW_PREFIX_LETTERS = "\u05d5\u05d1\u05dc\u05de\u05d4"
_ZWJ = "\u200d"

_CLOSERS = {"(": ")", "[": "]", "{": "}", "\u00ab": "\u00bb", "\u201c": "\u201d",
            "\u2018": "\u2019", "\u201e": "\u201c", '"': '"', "'": "'"}  # fmt: skip
_OPENERS = {closer: opener for opener, closer in _CLOSERS.items()}
# Marks that end an abbreviation or a numeral in Hebrew ("ג׳", "רז״ל").
_HEBREW_WORD_MARKS = "\u05f3\u05f4'"


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Greetings and pleasantries, each a sequence of word keys (see _word_key).
_GREETINGS: tuple[tuple[str, ...], ...] = tuple(
    tuple(phrase.split())
    for phrase in (
        # English
        "hi", "hello", "hey", "heya", "hiya", "howdy", "hallo", "greetings",
        "good morning", "good afternoon", "good evening", "good night",
        "good day", "thanks", "thank you", "thank you so much",
        "thank you very much", "thanks so much", "thanks a lot", "many thanks",
        "thx", "ty", "cheers", "ok", "okay", "bye", "goodbye",
        # Transliterated Hebrew and Yiddish
        "shalom", "sholom", "shalom aleichem", "shalom alechem",
        "shalom aleikhem", "shalom alaichem", "sholom aleichem",
        "aleichem shalom", "boker tov", "erev tov", "laila tov", "layla tov",
        "shavua tov", "shabbat shalom", "gut shabbos", "good shabbos",
        "chag sameach", "todah", "toda", "todah rabah", "toda raba",
        "toda rabah", "todah raba", "yasher koach", "yasher koyach",
        "yishar koach", "shkoyach",
        # Hebrew
        "שלום", "שלום עליכם", "עליכם שלום", "שלום לך", "שלום לכם", "היי",
        "הי", "הלו", "אהלן", "בוקר טוב", "ערב טוב", "צהריים טובים",
        "צהרים טובים", "לילה טוב", "שבוע טוב", "שבת שלום", "חג שמח", "תודה",
        "תודה רבה", "יישר כוח", "יישר כח", "ישר כוח", "ישר כח", "להתראות",
        "ביי",
    )
)  # fmt: skip
_GREETING_WORDS = frozenset(phrase[0] for phrase in _GREETINGS)
# Words that may stand next to a greeting without adding content.
_GREETING_FILLERS = _word_set(
    "there all everyone everybody folks again and dear rabbi rav rebbe friend "
    "friends הרב רב רבי כבוד לכולם שוב גם חבר חברים לך לכם יקר יקרים"
)
# Words that start a question, so a greeting right before them ends there.
_QUESTION_OPENERS = _word_set(
    "what whats where why how who when which is are does do did can could "
    "would should may please i im my tell explain מה מהו מהי איפה היכן למה "
    "מדוע איך כיצד מי מתי האם אפשר תסביר הסבר אני יש"
)
# A pleasantry at the end is looked for in at most this many trailing words.
_MAX_TRAILING_PLEASANTRY_WORDS = 8


def make_title(
    text: str, catalog: Catalog | None = None, limit: int = DEFAULT_LIMIT
) -> str | None:
    """Make a conversation title from a user message, or None if it has no content.

    The rules are listed in the module docstring. ``catalog`` enables titling
    a ref-only message with the canonical ref. Raises ValueError when
    ``limit`` is below 1.
    """
    if limit < 1:
        raise ValueError(f"Invalid title limit {limit}: expected at least 1.")
    cleaned = _clean_text(text)
    content = _strip_pleasantries(cleaned)
    if content is None:
        return None
    if catalog is not None:
        ref_title = _ref_title(content, catalog)
        if ref_title is not None:
            return _shorten(ref_title, limit)
    title = _trim(content, catalog)
    if not _has_letter_or_digit(title):
        return None
    return _shorten(_capitalize(title), limit, catalog)


def _clean_text(text: str) -> str:
    """Collapse whitespace and drop control, invisible and orphan characters.

    A surrogate pair left in a ``str`` becomes the character it encodes, and
    a lone surrogate is dropped because it cannot be stored as UTF-8.
    """
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")
    text = _INVISIBLE.sub("", text)
    kept: list[str] = []
    for char in text:
        if char.isspace():
            kept.append(" ")
        elif unicodedata.category(char) == "Cc":
            continue
        elif _is_extender(char) and (not kept or kept[-1] == " "):
            # A combining mark with no letter before it has nothing to attach to.
            continue
        else:
            kept.append(char)
    return " ".join("".join(kept).split())


# Greetings -----------------------------------------------------------------


@dataclass(frozen=True)
class _Chunk:
    """A space-separated piece of the message and its comparison key."""

    start: int
    end: int
    text: str
    key: str


def _strip_pleasantries(text: str) -> str | None:
    """Remove a leading greeting and a trailing pleasantry from cleaned text.

    Returns None when the text has no letters or digits or is only greetings.
    """
    if not _has_letter_or_digit(text):
        return None
    chunks = [
        _Chunk(m.start(), m.end(), m.group(), _word_key(m.group()))
        for m in re.finditer(r"\S+", text)
    ]
    consumed, greeted, boundary = _scan_greetings(chunks, 0)
    if consumed == len(chunks) and greeted:
        return None
    start = chunks[boundary].start if boundary else 0
    end = len(text)
    first_trailing = max(boundary + 1, len(chunks) - _MAX_TRAILING_PLEASANTRY_WORDS)
    for index in range(first_trailing, len(chunks)):
        if not _ends_with_break(chunks[index - 1].text):
            continue
        consumed, greeted, _ = _scan_greetings(chunks, index)
        if consumed == len(chunks) and greeted:
            end = chunks[index - 1].end
            break
    content = text[start:end].strip()
    return content if _has_letter_or_digit(content) else None


def _scan_greetings(chunks: Sequence[_Chunk], start: int) -> tuple[int, bool, int]:
    """Consume greetings, fillers and emoji from ``start``.

    Returns the index of the first chunk not consumed, whether a greeting was
    found, and the index where the content after a greeting begins (0 when
    no greeting is clearly separated from what follows).
    """
    index = start
    greeted = False
    boundary = 0
    while index < len(chunks):
        key = chunks[index].key
        if not key:
            step = 1
        else:
            step = _greeting_length(chunks, index)
            if step:
                greeted = True
            elif key in _GREETING_FILLERS:
                step = 1
            else:
                break
        index += step
        if greeted and _separates(chunks, index):
            boundary = index
    return index, greeted, boundary


def _greeting_length(chunks: Sequence[_Chunk], index: int) -> int:
    """Return how many chunks the longest greeting at ``index`` covers, or 0."""
    keys = [chunk.key for chunk in chunks[index:]]
    first = keys[0]
    # "ותודה": a Hebrew greeting joined to "and".
    if first.startswith("\u05d5") and first[1:] in _GREETING_WORDS:
        first = first[1:]
    best = 0
    for phrase in _GREETINGS:
        size = len(phrase)
        if size <= best or phrase[0] != first or len(keys) < size:
            continue
        if tuple(keys[1:size]) == phrase[1:]:
            best = size
    return best


def _separates(chunks: Sequence[_Chunk], index: int) -> bool:
    """Tell whether the chunks before ``index`` end a greeting clearly."""
    if index >= len(chunks):
        return False
    following = chunks[index].key
    previous = chunks[index - 1].text
    return _ends_with_break(previous) or not following or following in _QUESTION_OPENERS


def _ends_with_break(chunk: str) -> bool:
    """Tell whether a chunk ends with punctuation or an emoji, not a letter."""
    category = unicodedata.category(chunk[-1])
    return category[0] not in "LNM"


def _word_key(chunk: str) -> str:
    """Return a chunk's letters and digits, casefolded and without niqqud."""
    plain = strip_marks(chunk)
    return "".join(c for c in plain if unicodedata.category(c)[0] in "LN").casefold()


# Refs -------------------------------------------------------------------------


def _ref_title(content: str, catalog: Catalog) -> str | None:
    """Return the canonical ref when the whole message is a ref with an address."""
    for candidate in dict.fromkeys((content, _trim(content, catalog))):
        try:
            ref = catalog.parse(candidate, validate=True)
        except RefError:
            continue
        if not ref.start:
            # A bare title is left as text: aliases such as "Dan" or "Ex"
            # are also ordinary words.
            return None
        he_title = catalog.books[ref.book].he_title
        if contains_hebrew(candidate) and he_title:
            return ref.hebrew(he_title)
        return ref.normal()
    return None


def _ends_with_hebrew_ref(text: str, catalog: Catalog | None) -> bool:
    """Tell whether the text ends with a Hebrew ref whose "." or ":" is its amud."""
    if catalog is None or not text.endswith((".", ":")):
        return False
    words = text.split(" ")
    for count in range(2, min(len(words), 5) + 1):
        tail = " ".join(words[-count:])
        if not contains_hebrew(tail):
            continue
        # The title may carry a one-letter prefix: "בברכות ב." is "in Berakhot 2a".
        candidates = [tail]
        if tail[0] in _HEBREW_PREFIX_LETTERS:
            candidates.append(tail[1:])
        for candidate in candidates:
            try:
                catalog.parse(candidate, validate=False)
            except RefError:
                continue
            return True
    return False


# Trimming and shortening ----------------------------------------------------------


def _trim(text: str, catalog: Catalog | None = None) -> str:
    """Strip spaces, orphan marks and surrounding punctuation until none is left."""
    while True:
        before = text
        text = _drop_leading_extenders(text.strip())
        text = _unwrap(text)
        text = _trim_start(text)
        text = _trim_end(text, catalog)
        if text == before:
            return text


def _drop_leading_extenders(text: str) -> str:
    index = 0
    while index < len(text) and _is_extender(text[index]):
        index += 1
    return text[index:]


def _unwrap(text: str) -> str:
    """Remove one pair of quotes or brackets that encloses the whole text."""
    if len(text) < 2 or text[0] not in _CLOSERS or text[-1] != _CLOSERS[text[0]]:
        return text
    opener, closer = text[0], text[-1]
    inner = text[1:-1]
    if opener == closer:
        return inner if opener not in inner else text
    depth = 0
    for char in inner:
        if char == opener:
            depth += 1
        elif char == closer:
            depth -= 1
            if depth < 0:
                return text
    return inner if depth == 0 else text


def _trim_start(text: str) -> str:
    while text and _is_punctuation(text[0]):
        char = text[0]
        if char in _CLOSERS and _CLOSERS[char] in text[1:]:
            break
        text = _drop_leading_extenders(text[1:].lstrip())
    return text


def _trim_end(text: str, catalog: Catalog | None = None) -> str:
    """Strip trailing punctuation except balanced closers and Hebrew word marks."""
    text = text.rstrip()
    while text and _is_punctuation(text[-1]):
        char = text[-1]
        if char in _OPENERS and _closes_an_opener(text):
            break
        if char in _HEBREW_WORD_MARKS and _follows_hebrew_letter(text[:-1]):
            break
        if _ends_with_hebrew_ref(text, catalog):
            break
        text = text[:-1].rstrip()
    return text


def _closes_an_opener(text: str) -> bool:
    closer = text[-1]
    opener = _OPENERS[closer]
    before = text[:-1]
    if opener == closer:
        return before.count(closer) % 2 == 1
    return before.count(opener) > before.count(closer)


def _follows_hebrew_letter(text: str) -> bool:
    index = len(text) - 1
    while index >= 0 and _is_extender(text[index]):
        index -= 1
    return index >= 0 and _HEBREW_LETTER.fullmatch(text[index]) is not None


def _shorten(text: str, limit: int, catalog: Catalog | None = None) -> str:
    """Cut ``text`` to at most ``limit`` characters plus "…" at a word boundary."""
    if len(text) <= limit:
        return text
    space = text.rfind(" ", 0, limit + 1)
    if space > 0:
        head = _trim_end(text[:space], catalog)
        if _has_letter_or_digit(head):
            return head + ELLIPSIS
    cut = _grapheme_floor(text, limit)
    if cut == 0:
        # NOTE: a first letter whose combining marks make it longer than
        # ``limit`` has no boundary inside the limit, so the marks past the
        # limit are cut off.
        cut = limit
    head = _trim_end(text[:cut], catalog) or text[:cut]
    return head + ELLIPSIS


def _grapheme_floor(text: str, index: int) -> int:
    """Return the last position at or before ``index`` that ends a whole character.

    A character here means a base with its combining marks, an emoji with
    its modifiers, variation selectors and joined parts, or a pair of
    regional indicators (a flag). Hangul jamo sequences are not handled.
    """
    while index > 0 and not _is_grapheme_boundary(text, index):
        index -= 1
    return index


def _is_grapheme_boundary(text: str, index: int) -> bool:
    if index <= 0 or index >= len(text):
        return True
    previous, current = text[index - 1], text[index]
    if _is_extender(current) or previous == _ZWJ:
        return False
    if "\ud800" <= previous <= "\udbff" and "\udc00" <= current <= "\udfff":
        return False
    if _is_regional_indicator(previous) and _is_regional_indicator(current):
        run = 0
        position = index - 1
        while position >= 0 and _is_regional_indicator(text[position]):
            run += 1
            position -= 1
        return run % 2 == 0
    return True


def _is_extender(char: str) -> bool:
    """Tell whether ``char`` attaches to the character before it."""
    if unicodedata.category(char) in ("Mn", "Mc", "Me"):
        return True
    code = ord(char)
    return (
        code in (0x200C, 0x200D)
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or 0xE0100 <= code <= 0xE01EF
    )


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def _has_letter_or_digit(text: str) -> bool:
    return any(unicodedata.category(c)[0] in "LN" for c in text)


def _capitalize(text: str) -> str:
    first = text[0]
    if not first.islower() or "LATIN" not in unicodedata.name(first, ""):
        return text
    upper = first.upper()
    return upper + text[1:] if len(upper) == 1 else text
