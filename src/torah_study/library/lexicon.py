"""An English–Hebrew word list learned from the library's own translations.

Much of the library has Hebrew only (most of the Shulchan Arukh and the
commentaries), so an English question may share no word with the passage
that answers it. Every segment that carries both languages is a
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
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from torah_study.library.files import atomic_write_text
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
# At most this many bilingual segments are learned from, so the memory and
# time of the stage stay bounded on a library of millions of segments. A
# larger library contributes a uniform sample, drawn with a fixed seed.
MAX_SEGMENTS = 200_000
SAMPLE_SEED = 5786
# Pair keys are counted in chunks of this many segments, so the array that
# np.unique sorts stays at tens of millions of keys.
CHUNK_SEGMENTS = 5_000
# Counted chunks are added to the totals once they hold this many keys.
MERGE_KEYS = 20_000_000

# English function words. Hebrew ones are not listed, because the Dice
# coefficient keeps most of them out.
# TODO: a few remain as translations (israel → את, land → אשר) and inflate
# term coverage. Drop the query's Hebrew stop words here.
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
        # normalize() gives a word its counted spelling ("Sabbath" → "shabbat").
        tokens = tokenize(normalize(word))
        if not tokens:
            return []
        return [hebrew for hebrew, _ in self.english.get(english_key(tokens[0]), [])]

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
        atomic_write_text(path, json.dumps(data, ensure_ascii=False))

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
        """Return the saved lexicon, or an empty one if it is missing or invalid."""
        saved = cls.read(path)
        return cls() if saved is None else saved


def _entries(raw: dict[str, list[list[object]]]) -> dict[str, list[tuple[str, float]]]:
    """Return one direction of a saved lexicon with typed entries."""
    return {
        str(word): [(str(other), float(score)) for other, score in options]  # type: ignore[arg-type]
        for word, options in raw.items()
    }


def build_lexicon(pairs: Iterable[tuple[str, str]]) -> Lexicon:
    """Learn a lexicon from (Hebrew, English) texts of the same segments."""
    segments, english_count, hebrew_count = _read_segments(pairs)
    english_ids = _word_ids(english_count)
    hebrew_ids = _word_ids(hebrew_count)
    lexicon = Lexicon(pairs=len(segments))
    if not english_ids or not hebrew_ids:
        return lexicon

    width = len(hebrew_ids)
    keys, counts = _count_pairs(segments, english_ids, hebrew_ids, width)
    keep = counts >= MIN_PAIR_COUNT
    keys, counts = keys[keep], counts[keep]
    english_of, hebrew_of = keys // width, keys % width
    english_df = np.array([english_count[w] for w in english_ids], dtype=np.float64)
    hebrew_df = np.array([hebrew_count[w] for w in hebrew_ids], dtype=np.float64)
    dice = 2 * counts / (english_df[english_of] + hebrew_df[hebrew_of])
    strong = dice >= MIN_DICE
    english_of, hebrew_of, dice = english_of[strong], hebrew_of[strong], dice[strong]

    english_words_by_id = list(english_ids)
    hebrew_words_by_id = list(hebrew_ids)
    for index in np.argsort(-dice, kind="stable"):
        _add_pair(
            lexicon,
            english_words_by_id[english_of[index]],
            hebrew_words_by_id[hebrew_of[index]],
            round(float(dice[index]), 4),
        )
    return lexicon


def _read_segments(
    pairs: Iterable[tuple[str, str]],
) -> tuple[list[tuple[set[str], set[str]]], Counter[str], Counter[str]]:
    """Return the word sets of each usable segment and each word's segment count."""
    segments: list[tuple[set[str], set[str]]] = []
    # Reservoir sampling: every usable segment has the same chance to be kept.
    rng = random.Random(SAMPLE_SEED)
    seen = 0
    for he, en in pairs:
        if not he or not en:
            continue
        english, hebrew = english_words(en), hebrew_words(he)
        if not english or not hebrew:
            continue
        if len(english) > MAX_SEGMENT_WORDS or len(hebrew) > 2 * MAX_SEGMENT_WORDS:
            continue
        seen += 1
        if len(segments) < MAX_SEGMENTS:
            segments.append((english, hebrew))
            continue
        slot = rng.randrange(seen)
        if slot < MAX_SEGMENTS:
            segments[slot] = (english, hebrew)
    english_count: Counter[str] = Counter()
    hebrew_count: Counter[str] = Counter()
    for english, hebrew in segments:
        english_count.update(english)
        hebrew_count.update(hebrew)
    return segments, english_count, hebrew_count


def _word_ids(count: Counter[str]) -> dict[str, int]:
    """Number the words that occur in at least ``MIN_WORD_COUNT`` segments.

    Words are numbered in sorted order, so pairs with equal scores are kept
    in the same order on every run (set order changes with string hashing).
    """
    frequent = sorted(word for word, seen in count.items() if seen >= MIN_WORD_COUNT)
    return {word: index for index, word in enumerate(frequent)}


def _add_pair(lexicon: Lexicon, english: str, hebrew: str, score: float) -> None:
    """Add one pair, in descending score order, to both directions of ``lexicon``."""
    options = lexicon.english.setdefault(english, [])
    # A form that is a better translation minus its first letters (בוד beside
    # כבוד, מונה beside שמונה) comes from a letter of the word stripped as a
    # prefix. A better translation with a prefix (לצדקה beside צדקה) adds
    # nothing, because search adds the forms without prefixes itself.
    # TODO: at equal scores the form without prefix letters wins, even when
    # the letter is part of the word (דסה is kept for hadassah, not הדסה).
    redundant = any(
        hebrew in prefix_variants(better) or better in prefix_variants(hebrew)
        for better, _ in options
    )
    if len(options) < MAX_TRANSLATIONS and not redundant:
        options.append((hebrew, score))
    options = lexicon.hebrew.setdefault(hebrew, [])
    if len(options) < MAX_TRANSLATIONS:
        options.append((english, score))


def _count_pairs(
    segments: list[tuple[set[str], set[str]]],
    english_ids: dict[str, int],
    hebrew_ids: dict[str, int],
    width: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Count the segments in which each (English, Hebrew) pair occurs together."""
    keys = np.zeros(0, dtype=np.int64)
    counts = np.zeros(0, dtype=np.int64)
    pending: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
    pending_size = 0
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
        fresh = np.unique(np.concatenate(chunk), return_counts=True)
        pending.append(fresh)
        pending_size += fresh[0].size
        # Chunks are merged into the totals in groups, not one by one: the
        # totals grow with the library, and sorting them again after every
        # chunk would make the stage quadratic in its size.
        if pending_size >= MERGE_KEYS:
            keys, counts = _merge_counts(keys, counts, pending)
            pending, pending_size = [], 0
    return _merge_counts(keys, counts, pending)


def _merge_counts(
    keys: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Add the (keys, counts) of ``parts`` to the totals."""
    if not parts:
        return keys, counts
    merged = np.concatenate([keys, *(k for k, _ in parts)])
    weights = np.concatenate([counts, *(c for _, c in parts)])
    unique, inverse = np.unique(merged, return_inverse=True)
    return unique, np.bincount(inverse, weights=weights).astype(np.int64)
