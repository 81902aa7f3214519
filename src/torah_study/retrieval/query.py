"""What a question asks for: its language, the refs it names, its search terms."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from torah_study.library.catalog import Catalog
from torah_study.library.hebrew import (
    hebrew_ratio,
    normalize,
    prefix_variants,
    strip_marks,
)
from torah_study.library.refs import Ref, RefError

# Question words that carry no content; BM25 would otherwise reward passages
# that happen to contain "where" or "say".
_EN_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "say",
        "says",
        "said",
        "she",
        "should",
        "so",
        "tell",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "show",
        "find",
        "mention",
        "mentions",
        "story",
        "verse",
        "passage",
        "text",
    ]
)
_HE_STOP = frozenset(
    [
        "מה",
        "מי",
        "איפה",
        "היכן",
        "איך",
        "למה",
        "מדוע",
        "האם",
        "של",
        "את",
        "על",
        "אל",
        "עם",
        "זה",
        "זו",
        "גם",
        "כי",
        "אשר",
    ]
)
_PRACTICAL = re.compile(
    r"\b(can (?:i|one|we|a|you)|may (?:i|one|we|a)|am i allowed|"
    r"permitted|permissible|allowed|forbidden|prohibited|is it ok(?:ay)?|"
    r"should (?:i|one|we|a)|must (?:i|one|we)|do (?:i|we) (?:have|need) to|"
    r"how long (?:do|must|should) (?:i|one|we)|halakh?a on|am i obligated|"
    r"is (?:that|it) ok(?:ay)?|is it halakhically)\b|"
    "(?:מותר|אסור|האם אפשר|אני יכול|אני צריך|אני צריכה|אני חייב|אני חייבת"
    "|עליי|אפשר לי|צריך לחכות|כמה זמן צריך|מה ההלכה)",
    re.IGNORECASE,
)
# Requests to study, not to act: "Can I see…", "Can you show me…".
_STUDY_REQUEST = re.compile(
    r"\bcan (?:i|we|you) (?:read|see|find|get|learn|study|understand|look|ask"
    r"|show|quote|explain)\b",
    re.IGNORECASE,
)
# "What does the Tanya say…": a work named with an article. People are named
# without one ("What does Ben Zoma say…") and are not checked against the
# catalog, because a sage's words are found by search.
_NAMED_WORK = re.compile(
    r"\b(?i:what does the )"
    r"(?P<name>[A-Z][\w'\-]*(?: [A-Z][\w'\-]*)*) (?i:say|teach|write)",
)


@dataclass
class QueryAnalysis:
    """The parts of a question that retrieval and answering act on."""

    text: str
    language: str
    refs: list[Ref] = field(default_factory=list)
    ref_errors: list[str] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    practical: bool = False
    unknown_work: str | None = None
    categories: list[str] = field(default_factory=list)
    # Titles the question names without a ref ("in Tehillim", "Hilchot
    # Teshuvah"), commentators it names ("Rashi"), and the works its words
    # point to ("Maimonides" → Mishneh Torah).
    books: list[str] = field(default_factory=list)
    commentators: list[str] = field(default_factory=list)
    works: list[str] = field(default_factory=list)
    # The text embedded for the dense leg when it differs from the question
    # (a reformulation with a hypothetical passage).
    dense_text: str | None = None
    # Each search term's words in the other language, from the glossary and
    # the lexicon learned from the library's translations.
    translations: dict[str, list[str]] = field(default_factory=dict)

    @property
    def translated_terms(self) -> list[str]:
        """Return every translation of the terms once, in order."""
        words = [w for forms in self.translations.values() for w in forms]
        return [w for w in dict.fromkeys(words) if w not in self.terms]

    @property
    def scoped(self) -> bool:
        """Tell whether the question points to part of the library."""
        return bool(self.books or self.commentators or self.works or self.categories)


# Words that say which part of the library a question is about. "Where does
# the Torah say…" asks for a verse, not for a later work that quotes it.
_CATEGORY_HINTS = {
    "Tanach": (
        "torah", "verse", "verses", "pasuk", "psalm", "psalms", "bible", "tanakh",
        "tanach", "prophet", "prophets", "chumash", "תורה", "פסוק", "תהלים", "נביא",
    ),
    "Mishnah": ("mishnah", "mishna", "משנה"),
    "Talmud": ("talmud", "gemara", "תלמוד", "גמרא"),
}  # fmt: skip
# Words that name a work by its author or its usual short name. The values are
# category names of the library ("Mishneh Torah" is a category of its books).
_WORK_HINTS = {
    "Mishneh Torah": (
        "maimonides", "rambam", "רמבם", "mishneh torah", "משנה תורה", "hilchot",
        "hilkhot", "הלכות",
    ),
    "Shulchan Arukh": (
        "shulchan aruch", "shulchan arukh", "shulchan", "שולחן ערוך", "שוע",
        "orach chaim", "orach chayim", "אורח חיים", "yoreh deah", "יורה דעה",
    ),
}  # fmt: skip
# Transliterated Hebrew a learner may type, with the Hebrew that the texts use,
# so keyword search can match the Hebrew of the source.
TRANSLITERATIONS = {
    "shema": "שמע", "yisrael": "ישראל", "yisroel": "ישראל", "shabbat": "שבת",
    "shabbos": "שבת", "kiddush": "קידוש", "tzedakah": "צדקה", "teshuvah": "תשובה",
    "tefillah": "תפלה", "mitzvah": "מצוה", "mitzvot": "מצות", "akedah": "עקדה",
    "kaddish": "קדיש", "shofar": "שופר", "sukkah": "סוכה", "matzah": "מצה",
    "chametz": "חמץ", "tefillin": "תפלין", "mezuzah": "מזוזה", "eretz": "ארץ",
    "viduy": "וידוי", "vidui": "וידוי", "kippur": "כפורים", "teshuva": "תשובה",
    "chanukah": "חנוכה", "hanukkah": "חנוכה", "chanukkah": "חנוכה", "purim": "פורים",
    "pesach": "פסח", "omer": "עומר", "sefirat": "ספירת", "bedikat": "בדיקת",
    "havdalah": "הבדלה", "birkat": "ברכת", "hamazon": "המזון", "lulav": "לולב",
    "etrog": "אתרוג", "halacha": "הלכה", "halakha": "הלכה", "yesodei": "יסודי",
    "aveirot": "עבירות", "lashon": "לשון", "hara": "הרע", "kavod": "כבוד",
    "chesed": "חסד", "neder": "נדר", "nedarim": "נדרים", "kiddushin": "קידושין",
    "ketubah": "כתובה", "mikveh": "מקוה", "shechita": "שחיטה", "basar": "בשר",
    "chalav": "חלב", "tzitzit": "ציצית", "amidah": "עמידה", "bracha": "ברכה",
    "brachot": "ברכות", "berachot": "ברכות", "netilat": "נטילת", "yadayim": "ידים",
    "challah": "חלה", "maaser": "מעשר", "shmita": "שמטה", "mashiach": "משיח",
    "moshiach": "משיח", "olam": "עולם", "haba": "הבא", "gehinnom": "גיהנם",
    "korban": "קרבן", "kohen": "כהן", "kohanim": "כהנים", "hamikdash": "המקדש",
    "hashanah": "השנה", "tisha": "תשעה", "megillah": "מגילה", "tzaddik": "צדיק",
    "rasha": "רשע", "emunah": "אמונה", "bitachon": "בטחון", "avodah": "עבודה",
    "zarah": "זרה", "tumah": "טומאה", "taharah": "טהרה", "niddah": "נדה",
    "sotah": "סוטה", "yibbum": "יבום", "chalitzah": "חליצה", "eruv": "ערוב",
    "muktzeh": "מוקצה", "melacha": "מלאכה", "melachot": "מלאכות", "nefesh": "נפש",
}  # fmt: skip


STOP_WORDS = _EN_STOP | _HE_STOP


def category_hints(text: str) -> list[str]:
    """Return the top-level categories a question names ("Torah" → Tanach)."""
    words = set(normalize(text).split())
    return [name for name, cues in _CATEGORY_HINTS.items() if words & set(cues)]


def work_hints(text: str) -> list[str]:
    """Return the works a question names by author or short name."""
    words: list[str] = []
    for token in normalize(text).split():
        words.append(token)
        words.extend(prefix_variants(token))
    padded = f" {' '.join(words)} "
    return [
        work
        for work, cues in _WORK_HINTS.items()
        if any(f" {cue} " in padded for cue in cues)
    ]


def detect_language(text: str) -> str:
    """Return "he" when most letters are Hebrew, else "en"."""
    return "he" if hebrew_ratio(text) > 0.5 else "en"


def content_terms(text: str) -> list[str]:
    """Return the normalised content words of a question, in order, without repeats."""
    terms: list[str] = []
    for token in normalize(text).split():
        if token in STOP_WORDS or len(token) < 2:
            continue
        if token not in terms:
            terms.append(token)
    return terms


def keyword_query(terms: list[str]) -> str:
    """Build the BM25 query: each term plus its Hebrew prefix-stripped variants."""
    words: list[str] = []
    for term in terms:
        words.append(term)
        words.extend(prefix_variants(term))
    return " ".join(dict.fromkeys(words))


def analyze(question: str, catalog: Catalog) -> QueryAnalysis:
    """Find refs, language, practical intent and search terms in a question."""
    analysis = QueryAnalysis(text=question, language=detect_language(question))
    for found in catalog.find_refs(strip_marks(question)):
        if isinstance(found, RefError):
            analysis.ref_errors.append(str(found))
        elif found not in analysis.refs:
            analysis.refs.append(found)
    analysis.terms = content_terms(question)
    analysis.terms.extend(
        TRANSLITERATIONS[t] for t in analysis.terms if t in TRANSLITERATIONS
    )
    analysis.categories = category_hints(question)
    if not analysis.refs:
        analysis.books, analysis.commentators = catalog.mentioned(question)
        analysis.works = work_hints(question)
    # "Can I read Genesis 1:1?" requests a text, not for a ruling.
    analysis.practical = (
        not analysis.refs
        and _PRACTICAL.search(question) is not None
        and _STUDY_REQUEST.search(question) is None
    )
    # Checked with a ref too: "What does Ramban say on Genesis 1:1?" requests
    # a commentary the library lacks, not for the verse.
    outside = catalog.outside_work(question, hebrew=analysis.language == "he")
    # "Rambam" also wrote works outside the library, but a learner who names
    # him means the Mishneh Torah, which it holds.
    if outside is not None and not work_hints(outside):
        analysis.unknown_work = outside
    match = _NAMED_WORK.search(question)
    if match and not analysis.refs and analysis.unknown_work is None:
        name = match.group("name")
        known = catalog.find_book(name) or catalog.books_in(name)
        is_commentator = name in catalog.commentators()
        if not known and not is_commentator and name.lower() not in _GENERIC_NAMES:
            analysis.unknown_work = name
    return analysis


# Names a learner uses for the library as a whole or its big parts, which are
# never book titles but are still answerable.
_GENERIC_NAMES = frozenset(
    [
        "torah",
        "bible",
        "tanakh",
        "tanach",
        "talmud",
        "gemara",
        "mishnah",
        "mishna",
        "halakhah",
        "halacha",
        "midrash",
        "god",
        "moses",
        "rabbi",
        "rabbis",
        "sages",
        "judaism",
        "jewish",
        "law",
    ]
)
