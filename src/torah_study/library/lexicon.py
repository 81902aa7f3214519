"""An English–Hebrew word list learned from the library's own translations.

Much of the library has Hebrew only (most Talmud tractates, the Mishneh
Torah, the Shulchan Arukh), so an English question shares no word with the
passage that answers it. Every segment that carries both languages is a
pair of aligned sentences, and a word that translates another keeps turning
up in the same pairs: "charity" with צדקה, "lamp" with נר. The lexicon
counts, over all pairs, the segments in which each English word and each
Hebrew word occur together. It keeps the pairs with a high Dice coefficient,
2·both / (english + hebrew), which favours words that occur together more
often than either occurs alone.

Hebrew words are counted with their prefix-stripped forms (והצדקה also
counts as הצדקה and צדקה), so the forms of one word add up. English words
are counted lower-cased and with a plain plural ending removed.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from torah_study.library.hebrew import normalize, prefix_variants, tokenize

logger = logging.getLogger(__name__)

LEXICON_FORMAT = 1
# A pair must occur together in at least this many segments.
MIN_PAIR_COUNT = 4
# A word must occur in at least this many bilingual segments to be counted.
MIN_WORD_COUNT = 4
# Pairs below this Dice coefficient are dropped.
MIN_DICE = 0.12
# Translations kept per word.
MAX_TRANSLATIONS = 3
# Segments with more words than this are skipped, because in a long passage
# every word occurs with every other, which teaches nothing.
MAX_SEGMENT_WORDS = 90
# Pair keys are counted in chunks of this many segments, so the array that
# np.unique sorts stays at tens of millions of keys.
CHUNK_SEGMENTS = 5_000

# English function words. Hebrew ones are not listed, and the Dice
# coefficient keeps most of them out.
# TODO: a few remain as translations (israel → את, land → אשר) and inflate
# term coverage; drop the query's Hebrew stop words here.
_ENGLISH_STOP = frozenset(
    """
    a about above after again against all also am an and any are as at be
    because been before being below between both but by can could did do does
    doing down during each even every few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself
    just let like may me might more most must my myself no nor not now of off
    on once one only or other our ours ourselves out over own said say says
    shall she should so some such than that the their theirs them themselves
    then there these they this those through thus to too under unto until up
    upon us very was we were what when where which while who whom why will with
    would ye yet you your yours yourself yourselves thee thou thy thine hath
    doth shalt wilt art hast saith
    """.split()  # noqa: SIM905
)


def english_key(word: str) -> str:
    """Return the counted form of an English word ("levels" → "level")."""
    word = word.lower().strip("'")
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return f"{word[:-3]}y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def english_words(text: str) -> set[str]:
    """Return the counted English content words of ``text``."""
    return {
        english_key(token)
        for token in tokenize(normalize(text))
        if token.isascii() and token.isalpha() and len(token) > 2
        if token not in _ENGLISH_STOP
    }


def hebrew_words(text: str) -> set[str]:
    """Return the Hebrew words of ``text`` with their prefix-stripped forms."""
    words: set[str] = set()
    for token in tokenize(normalize(text)):
        if token.isascii() or len(token) < 2:
            continue
        words.add(token)
        words.update(prefix_variants(token))
    return words


@dataclass
class Lexicon:
    """Translations in both directions, best first, with their Dice scores."""

    english: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    hebrew: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    pairs: int = 0

    def __len__(self) -> int:
        return len(self.english)

    def to_hebrew(self, word: str) -> list[str]:
        """Return the Hebrew words that translate an English word."""
        keys = [english_key(token) for token in tokenize(normalize(word))]
        return [h for key in keys[:1] for h, _ in self.english.get(key, [])]

    def to_english(self, word: str) -> list[str]:
        """Return the English words for a Hebrew word, trying it without prefixes."""
        for form in (word, *prefix_variants(word)):
            if form in self.hebrew:
                return [e for e, _ in self.hebrew[form]]
        return []

    def save(self, path: Path) -> None:
        data = {
            "format": LEXICON_FORMAT,
            "pairs": self.pairs,
            "english": self.english,
            "hebrew": self.hebrew,
        }
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Lexicon | None:
        """Read a saved lexicon, or return None when the file is missing or invalid.

        An invalid file (unreadable, not JSON, another format or a wrong
        shape) is logged with its path.
        """
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data["format"] != LEXICON_FORMAT:
                raise ValueError(
                    f"format {data['format']!r}, expected {LEXICON_FORMAT}"
                )
            return cls(
                _entries(data["english"]), _entries(data["hebrew"]), int(data["pairs"])
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            logger.warning("Ignoring the invalid lexicon %s: %s", path, error)
            return None

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        """Read a saved lexicon; a missing or invalid file gives an empty one."""
        return cls.read(path) or cls()


def _entries(raw: dict[str, list[list[object]]]) -> dict[str, list[tuple[str, float]]]:
    """Return one direction of a saved lexicon with typed entries."""
    return {
        str(word): [(str(other), float(score)) for other, score in options]  # type: ignore[arg-type]
        for word, options in raw.items()
    }


def build_lexicon(pairs: Iterable[tuple[str, str]]) -> Lexicon:
    """Learn a lexicon from (Hebrew, English) texts of the same segments."""
    segments: list[tuple[set[str], set[str]]] = []
    english_count: Counter[str] = Counter()
    hebrew_count: Counter[str] = Counter()
    for he, en in pairs:
        if not he or not en:
            continue
        english, hebrew = english_words(en), hebrew_words(he)
        if not english or not hebrew:
            continue
        if len(english) > MAX_SEGMENT_WORDS or len(hebrew) > 2 * MAX_SEGMENT_WORDS:
            continue
        segments.append((english, hebrew))
        english_count.update(english)
        hebrew_count.update(hebrew)
    english_ids = {
        w: i
        for i, w in enumerate(
            w for w, c in english_count.items() if c >= MIN_WORD_COUNT
        )
    }
    hebrew_ids = {
        w: i
        for i, w in enumerate(w for w, c in hebrew_count.items() if c >= MIN_WORD_COUNT)
    }
    if not english_ids or not hebrew_ids:
        return Lexicon(pairs=len(segments))
    width = len(hebrew_ids)
    keys, counts = _count_pairs(segments, english_ids, hebrew_ids, width)
    english_words_by_id = list(english_ids)
    hebrew_words_by_id = list(hebrew_ids)
    english_df = np.array(
        [english_count[w] for w in english_words_by_id], dtype=np.float64
    )
    hebrew_df = np.array(
        [hebrew_count[w] for w in hebrew_words_by_id], dtype=np.float64
    )
    keep = counts >= MIN_PAIR_COUNT
    keys, counts = keys[keep], counts[keep]
    english_of, hebrew_of = keys // width, keys % width
    dice = 2 * counts / (english_df[english_of] + hebrew_df[hebrew_of])
    strong = dice >= MIN_DICE
    english_of, hebrew_of, dice = english_of[strong], hebrew_of[strong], dice[strong]
    lexicon = Lexicon(pairs=len(segments))
    order = np.argsort(-dice, kind="stable")
    for index in order:
        english_word = english_words_by_id[english_of[index]]
        hebrew_word = hebrew_words_by_id[hebrew_of[index]]
        score = round(float(dice[index]), 4)
        options = lexicon.english.setdefault(english_word, [])
        # TODO: at equal scores the form without prefix letters wins, even when
        # the letter is part of the word (דסה is kept for hadassah, not הדסה).
        # A form that is a better translation minus its first letters (בוד
        # beside כבוד, מונה beside שמונה) is a prefix wrongly stripped, and a
        # better translation with a prefix (לצדקה beside צדקה) adds nothing,
        # because search adds the forms without prefixes itself.
        redundant = any(
            hebrew_word in prefix_variants(h) or h in prefix_variants(hebrew_word)
            for h, _ in options
        )
        if len(options) < MAX_TRANSLATIONS and not redundant:
            options.append((hebrew_word, score))
        options = lexicon.hebrew.setdefault(hebrew_word, [])
        if len(options) < MAX_TRANSLATIONS:
            options.append((english_word, score))
    return lexicon


def _count_pairs(
    segments: list[tuple[set[str], set[str]]],
    english_ids: dict[str, int],
    hebrew_ids: dict[str, int],
    width: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Count the segments in which each (English, Hebrew) pair occurs together."""
    keys = np.zeros(0, dtype=np.int64)
    counts = np.zeros(0, dtype=np.int64)
    for start in range(0, len(segments), CHUNK_SEGMENTS):
        chunk: list[npt.NDArray[np.int64]] = []
        for english, hebrew in segments[start : start + CHUNK_SEGMENTS]:
            e = np.fromiter(
                (english_ids[w] for w in english if w in english_ids), dtype=np.int64
            )
            h = np.fromiter(
                (hebrew_ids[w] for w in hebrew if w in hebrew_ids), dtype=np.int64
            )
            if e.size and h.size:
                chunk.append((e[:, None] * width + h[None, :]).ravel())
        if not chunk:
            continue
        fresh_keys, fresh_counts = np.unique(np.concatenate(chunk), return_counts=True)
        merged = np.concatenate([keys, fresh_keys])
        weights = np.concatenate([counts, fresh_counts])
        keys, inverse = np.unique(merged, return_inverse=True)
        counts = np.bincount(inverse, weights=weights).astype(np.int64)
    return keys, counts
