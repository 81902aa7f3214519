"""Standalone search queries for follow-up questions.

A follow-up such as "and what does Rashi say about it?" cannot be searched on
its own. ``rewrite_followup`` rewrites it from the earlier turns with fixed
rules. ``rewrite_with_model`` prompts an answer model for the rewrite and
falls back to those rules when the model fails or its output is not a query.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from torah_study.answer.llm.base import AnswerModel, ChatMessage, ProviderError
from torah_study.library.catalog import Book, Catalog
from torah_study.library.hebrew import (
    normalize,
    prefix_variants,
    strip_marks,
    unify_quotes,
)
from torah_study.library.refs import Ref, RefError
from torah_study.retrieval.query import STOP_WORDS, content_terms, detect_language

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 300
MIN_MODEL_QUERY_CHARS = 3
# Turns shown to the model, newest last.
MODEL_HISTORY_TURNS = 3
# Refs of the previous answer added to a rewritten query.
CONTEXT_REFS = 2
SEPARATOR = "; "

REWRITE_PROMPT = (
    "You rewrite follow-up questions for a search engine over Jewish texts. "
    "Rewrite the user's last question as one standalone search query that can "
    'be understood without the conversation: replace words such as "it", '
    '"that" or "he" with what they refer to. Write the query in the language '
    "of the last question and keep refs (such as Genesis 22:2) and names as "
    "they are written. Output only the query, on a single line."
)


@dataclass(frozen=True)
class Turn:
    """An earlier exchange of a conversation."""

    question: str
    """The user's question as typed."""
    query: str
    """The standalone query that was searched for the question."""
    refs: tuple[str, ...]
    """Refs of the answer's sources, best first."""


# Detecting follow-ups ----------------------------------------------------------


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*|[\u05d0-\u05ea]+|[.?!;:,()\[\]\u2014]")
_END = "|"

_EN_PRONOUNS = _word_set("it its itself he she they him them")
# Possessive and reflexive pronouns usually point to a person or thing named
# earlier in the same question: "What does the Torah say about a man and his
# wife?". "her" counts here only when a noun follows it ("her mother").
_EN_POSSESSIVES = _word_set("his her hers their theirs himself herself themselves")
# Words that open a clause whose pronouns usually point inside the same
# question: "Can a person eat before he prays?"
_EN_SUBORDINATORS = _word_set(
    "if when whenever whether unless until while because after before since "
    "once although though who whom whose which that"
)
# "Is it permitted to…": "it" stands for what follows, not for an earlier turn.
_EN_IMPERSONAL = _word_set(
    "permitted allowed forbidden prohibited ok okay true possible necessary "
    "required obligatory mandatory proper appropriate important wrong right "
    "better best good bad customary permissible preferable acceptable fine "
    "worth mitzvah sin custom obligation problem"
)
_EN_CLAUSE_AFTER_IMPERSONAL = _word_set("to that for if when whether")
_EN_SAY = _word_set("say says said written stated taught teach teaches")
_EN_AFTER_GENERIC_SAY = _word_set("that in anywhere somewhere explicitly")
_EN_PREPOSITIONS = _word_set(
    "about of on in with from by for to like regarding concerning into upon "
    "after before besides beyond than"
)
_EN_AUXILIARIES = _word_set(
    "is was are were does did do can could would will should why how where "
    "when what isn't doesn't didn't"
)
# Nouns that name a passage or an earlier answer: "that verse", "the passage".
_EN_DEICTIC_NOUNS = _word_set(
    "verse verses passage passages text source sources quote story commentary "
    "comment daf chapter line teaching ruling answer example statement "
    "explanation interpretation opinion reference citation"
)
_EN_NOUN_VERBS = _word_set(
    "mean means meant say says said teach teaches taught refer refers imply "
    "implies describe describes come comes appear appears talk talks mention "
    "mentions discuss discusses tell tells state states"
)
_EN_TIME_NOUNS = _word_set(
    "world week year month day morning evening time era generation life"
)
_EN_BE = _word_set("is are was were be been exist exists existed seem seems any a an")
_EN_LEADING = _word_set("and also but plus")
_EN_PHRASES = (
    ("what", "about"),
    ("how", "about"),
    ("you", "said"),
    ("you", "mentioned"),
    ("you", "quoted"),
    ("you", "cited"),
    ("your", "answer"),
)
_EN_ALWAYS = _word_set("else previous aforementioned")

_HE_ALWAYS = _word_set(
    "עליו עליה עליהם עליהן בו בה בהם בהן לו לה להם להן אותו אותה אותם אותן "
    "שלו שלה שלהם שלהן ממנו ממנה מהם מהן אליו אליה אליהם עמו איתו איתה "
    "הזה הזאת הזו האלה האלו ההוא ההיא ההם ההן כאן הנל כנל בזה לזה מזה "
    "וזה בזאת לזאת מזאת משם"
)
# "העולם הזה" (this world) and "בזמן הזה" (nowadays) are fixed terms.
_HE_FIXED_BEFORE_THIS = _word_set("עולם העולם בעולם לעולם זמן הזמן בזמן")
_HE_DEMONSTRATIVES = _word_set("זה זו זאת")
_HE_COPULA_BEFORE = _word_set("מה מי ומה ומי")
_HE_PERSONAL = _word_set("הוא היא הם הן")
_HE_QUESTION_WORDS = _word_set(
    "מה מי למה איך איפה היכן מדוע מתי כמה האם מאיפה מנין מניין"
)
_HE_LEADING = _word_set("גם עוד")
# A leading question word joined to ו ("ומה", "ולמה") continues the last turn.
_HE_JOINED_LEADING = _HE_QUESTION_WORDS | _HE_LEADING
_HE_VERBS = _word_set(
    "אומר אומרת אומרים אומרות אמר אמרה אמרו כותב כותבת כותבים כתב כתבה כתבו "
    "מלמד מלמדת מלמדים לימד למד מסביר מסבירה מסבירים הסביר מפרש מפרשת "
    "מפרשים פירש פירשו עשה עשתה עשו עושה עושים רוצה רוצים חושב חושבים סובר "
    "סוברת סוברים פוסק פוסקים פסק טוען טוענים מתכוון מתכוונת מתכוונים שואל "
    "שואלת שאל עונה ענה מביא מביאה מביאים הביא אוסר אוסרים מתיר מתירים נאמר "
    "כתוב מופיע מופיעה מופיעים שייך שייכת מדבר מדברת מדברים קשור קשורה נכון "
    "חשוב מקשה מתרץ מוסיף מוסיפה מוסיפים בא באה באים היה הייתה היו"
)
_HE_THERE_AFTER = _word_set(
    "כתוב נאמר אומר אומרת אומרים מובא מובאת מופיע מופיעה מוזכר כתב כותב נכתב מסופר"
)
_HE_DEICTIC_NOUNS = _word_set(
    "הפסוק הפסוקים הקטע הטקסט המקור המקורות הסיפור הפירוש הדף הפרק התשובה הציטוט הדוגמה"
)
_HE_PHRASES = (("מה", "עוד"), ("מה", "לגבי"), ("מה", "עם"))

# Words that ask for more without naming a topic: "Tell me more", "Why?".
_FILLER_WORDS = _word_set(
    "more else about explain elaborate expand continue further detail details "
    "example examples source sources mean meaning means another other others "
    "again please give really exactly ok okay yes no thanks thank go keep "
    "going next deeper also just one any some "
    "עוד נוסף נוספים נוספות אחר אחרים אחרת שוב הסבר תסביר להסביר הרחב תרחיב "
    "להרחיב פרט תפרט המשך תמשיך דוגמה דוגמא דוגמאות מקור מקורות אומר אומרת "
    "אומרים כתוב אמר אמרו כותב בבקשה למה מדוע גם תודה"
)


def needs_context(question: str, catalog: Catalog | None = None) -> bool:
    """Tell whether a question leans on earlier turns of the conversation.

    A question leans on them when it points back: "it", "that verse", "the
    same", "what about", a leading "and", or in Hebrew "עליו", "הפסוק הזה"
    and a question word joined to ו such as "ומה". It also leans on them when
    it has no topic of its own, so that no word is left after removing
    question words, requests for more such as "explain" or "more", and
    (with a catalog) commentator names. A question that names its own ref or
    book has that name as its topic.
    """
    tokens = _tokens(question)
    if not any(token != _END for token in tokens):
        return False
    if _points_back(tokens):
        return True
    return not _has_topic(question, catalog)


def _tokens(text: str) -> list[str]:
    """Return lower-case words, with clause punctuation as ``_END`` markers."""
    plain = unify_quotes(strip_marks(text)).lower()
    plain = plain.replace("\u2019", "'").replace("\u2018", "'")
    return [token if token[0].isalnum() else _END for token in _TOKEN.findall(plain)]


def _points_back(tokens: Sequence[str]) -> bool:
    words = [token for token in tokens if token != _END]
    first = words[0]
    if first in _EN_LEADING or first in _HE_LEADING:
        return True
    if first.startswith("\u05d5") and first[1:] in _HE_JOINED_LEADING:
        return True
    pairs = set(itertools.pairwise(words))
    if pairs & set(_EN_PHRASES) or pairs & set(_HE_PHRASES):
        return True
    first_index = tokens.index(first)
    subordinate = False
    for index, token in enumerate(tokens):
        if token == _END:
            subordinate = False
            continue
        previous = tokens[index - 1] if index > 0 else _END
        following = tokens[index + 1] if index + 1 < len(tokens) else _END
        if token in _EN_SUBORDINATORS and previous != _END:
            if _english_points_back(tokens, index, subordinate=subordinate):
                return True
            subordinate = True
            continue
        if _english_points_back(tokens, index, subordinate=subordinate):
            return True
        if _hebrew_points_back(token, previous, following, first=index == first_index):
            return True
    return False


def _english_points_back(
    tokens: Sequence[str], index: int, *, subordinate: bool
) -> bool:
    token = tokens[index]
    previous = tokens[index - 1] if index > 0 else _END
    following = tokens[index + 1] if index + 1 < len(tokens) else _END
    if token in _EN_ALWAYS:
        return True

    if token == "her" and (following == _END or following in _EN_PREPOSITIONS):
        return not subordinate
    if token in _EN_POSSESSIVES:
        return not subordinate and not _names_something_before(tokens, index)
    if token in _EN_PRONOUNS:
        return not subordinate and not (
            token == "it" and _is_impersonal_it(tokens, index)
        )

    if token == "that":
        return (
            following == _END
            or following in _EN_DEICTIC_NOUNS
            or previous == _END
            or previous in _EN_PREPOSITIONS
            or previous in _EN_AUXILIARIES
        )

    if token == "this":
        return following not in _EN_TIME_NOUNS
    if token in ("these", "those"):
        return following not in {"who", "whom", "whose", "which", "that", "of", "days"}
    if token == "there":
        return following not in _EN_BE and previous not in {"is", "are", "was", "were"}
    if token == "same":
        return previous == "the" and following != "as"

    if token in _EN_DEICTIC_NOUNS and previous == "the":
        return following == _END or following in _EN_NOUN_VERBS
    return False


def _names_something_before(tokens: Sequence[str], index: int) -> bool:
    """Tell whether a content word comes before ``index`` in the question."""
    return any(
        token.isalpha()
        and len(token) > 1
        and token not in STOP_WORDS
        and token not in _FILLER_WORDS
        for token in tokens[:index]
    )


def _is_impersonal_it(tokens: Sequence[str], index: int) -> bool:
    """Tell whether "it" at ``index`` is a placeholder ("is it permitted to…")."""
    after = list(tokens[index + 1 : index + 7])
    following = after[0] if after else _END
    if following in ("that", "take", "takes"):
        return True
    if following in _EN_SAY and len(after) > 1 and after[1] in _EN_AFTER_GENERIC_SAY:
        return True
    for position, word in enumerate(after[:3]):
        if word == _END:
            return False
        if word in _EN_IMPERSONAL:
            rest = after[position + 1 : position + 3]
            return any(w in _EN_CLAUSE_AFTER_IMPERSONAL for w in rest)
    return False


def _hebrew_points_back(
    token: str, previous: str, following: str, *, first: bool
) -> bool:
    if token in _HE_ALWAYS:
        return not (
            token in ("הזה", "הזאת", "הזו") and previous in _HE_FIXED_BEFORE_THIS
        )
    if token in _HE_DEMONSTRATIVES:
        # "מה זה שבת?" asks what Shabbat is, but "מה זה אומר?" asks what "that" means.
        is_copula = previous in _HE_COPULA_BEFORE and following not in _HE_VERBS
        return following == _END or not is_copula
    if token in _HE_PERSONAL:
        return first or following == _END or following in _HE_VERBS
    if token == "שם":
        return following == _END or previous in _HE_THERE_AFTER
    if token in _HE_DEICTIC_NOUNS:
        return following == _END or following in _HE_VERBS
    return False


def _has_topic(question: str, catalog: Catalog | None) -> bool:
    names = _commentator_words(catalog) if catalog is not None else frozenset()
    for term in content_terms(question):
        if term in _FILLER_WORDS or term in names:
            continue
        # "ולמה", "ומה": "and" joined to a question word.
        joined = term[1:] if term.startswith("\u05d5") else ""
        if joined in STOP_WORDS or joined in _FILLER_WORDS:
            continue
        variants = prefix_variants(term)
        if any(v in _FILLER_WORDS or v in STOP_WORDS or v in names for v in variants):
            continue
        return True
    return False


# Commentaries -----------------------------------------------------------------


@dataclass(frozen=True)
class _Commentator:
    """A commentator with "<name> on <book>" titles in the catalog."""

    name: str
    names: tuple[str, ...]
    """The English name and the Hebrew names taken from the Hebrew titles."""
    books: dict[str, Book]
    """The commentary on each base book, by the base book's title."""


def _commentators(catalog: Catalog) -> list[_Commentator]:
    """Find every "<name> on <book>" title whose book is also in the catalog."""
    books: dict[str, dict[str, Book]] = {}
    hebrew_names: dict[str, set[str]] = {}
    for title, book in catalog.books.items():
        for match in re.finditer(" on ", title):
            name, base_title = title[: match.start()], title[match.end() :]
            base = catalog.books.get(base_title)
            if base is None or not name:
                continue
            books.setdefault(name, {})[base_title] = book
            he_name = _hebrew_name(book.he_title, base.he_title)
            if he_name:
                hebrew_names.setdefault(name, set()).add(he_name)
    return [
        _Commentator(name, (name, *sorted(hebrew_names.get(name, ()))), by_base)
        for name, by_base in books.items()
    ]


def _hebrew_name(he_title: str, base_he_title: str) -> str | None:
    """Return "רש"י" from "רש"י על בראשית" when the rest is the base book's title."""
    suffix = f" \u05e2\u05dc {base_he_title}"
    if base_he_title and he_title.endswith(suffix):
        return he_title[: -len(suffix)].strip() or None
    return None


def _name_key(text: str) -> str:
    """Return the form names are matched in: casefolded, no niqqud or gershayim."""
    return " ".join(unify_quotes(strip_marks(text)).casefold().split())


def _name_pattern(name: str) -> re.Pattern[str]:
    key = re.escape(_name_key(name))
    if re.search("[\u05d0-\u05ea]", name):
        # Allow one or two prefix letters: "ורש"י", "לרמב"ן".
        return re.compile(
            rf"(?<![\u05d0-\u05ea])[\u05d5\u05d1\u05dc\u05de\u05d4\u05e9\u05db]{{0,2}}"
            rf"{key}(?![\u05d0-\u05ea])"
        )
    return re.compile(rf"(?<!\w){key}(?!\w)")


def _commentator_words(catalog: Catalog) -> frozenset[str]:
    return frozenset(
        word
        for commentator in _commentators(catalog)
        for name in commentator.names
        for word in normalize(name).split()
    )


def _named_commentators(question: str, catalog: Catalog) -> list[_Commentator]:
    """Return the commentators a question names, in the order it names them."""
    key = _name_key(question)
    found: list[tuple[int, str, _Commentator]] = []
    for commentator in _commentators(catalog):
        positions = [
            match.start()
            for name in commentator.names
            for match in _name_pattern(name).finditer(key)
        ]
        if positions:
            found.append((min(positions), commentator.name, commentator))
    return [commentator for _, _, commentator in sorted(found, key=lambda f: f[:2])]


def _commentary_query(
    question: str, top_ref: str, catalog: Catalog, hebrew: bool
) -> str | None:
    """Return "<commentator> on <ref>" for each commentator the question names.

    Returns None unless at least one named commentator has a commentary on the
    book of ``top_ref`` that exists at that place in the library.
    """
    base = _base_ref(top_ref, catalog)
    if base is None or not base.start:
        return None
    queries = []
    for commentator in _named_commentators(question, catalog):
        book = commentator.books.get(base.book)
        if book is None:
            continue
        ref = book.ref(base.start, base.end)
        text = ref.hebrew(book.he_title) if hebrew and book.he_title else ref.normal()
        try:
            parsed = catalog.parse(text, validate=True)
        except RefError:
            continue
        if parsed.normal() == ref.normal():
            queries.append(text)
    return SEPARATOR.join(queries) if queries else None


def _base_ref(text: str, catalog: Catalog) -> Ref | None:
    """Parse a ref and map a commentary ref to the place it comments on."""
    try:
        ref = catalog.parse(text, validate=False)
    except RefError:
        return None
    for match in re.finditer(" on ", ref.book):
        base = catalog.books.get(ref.book[match.end() :])
        if base is None:
            continue
        start = ref.start[: base.depth]
        end = ref.end[: base.depth] if ref.end is not None else None
        return base.ref(start, end if end != start else None)
    return ref


# Rewriting by rules -----------------------------------------------------------


def rewrite_followup(question: str, history: Sequence[Turn], catalog: Catalog) -> str:
    """Rewrite a follow-up into a standalone search query without a model.

    A question that does not need context, or has no history, is returned
    unchanged. A question that names a commentator ("and what does Rashi say
    about it?") after an answer whose top source has that commentator's
    commentary becomes the commentary ref ("Rashi on Genesis 22:2"), in
    Hebrew for a Hebrew question. Any other follow-up keeps its words and gets
    the previous query and the top refs of the most recent answer with sources
    in brackets: "What else does it say? (previous query; Exodus 20:12)". The
    previous query is left out when it is in another language than the
    question, and it is shortened so the result stays within
    ``MAX_QUERY_CHARS`` unless the question alone is longer.
    """
    if not history or not needs_context(question, catalog):
        return question
    original = question
    question = " ".join(question.split())
    hebrew = detect_language(question) == "he"
    refs = _recent_refs(history)
    if refs:
        commentary = _commentary_query(question, refs[0], catalog, hebrew)
        if commentary is not None:
            return commentary
    shown = []
    for text in refs[:CONTEXT_REFS]:
        formatted = _format_ref(text, catalog, hebrew)
        if formatted and formatted.casefold() not in question.casefold():
            shown.append(formatted)
    previous = " ".join(history[-1].query.split())
    if previous == question or detect_language(previous) != detect_language(question):
        previous = ""
    return _with_context(question, previous, shown) or original


def _recent_refs(history: Sequence[Turn]) -> tuple[str, ...]:
    """Return the refs of the most recent turn whose answer had sources."""
    for turn in reversed(history):
        if turn.refs:
            return turn.refs
    return ()


def _format_ref(text: str, catalog: Catalog, hebrew: bool) -> str | None:
    """Write a ref in the question's script; None if a Hebrew form cannot be made."""
    try:
        ref = catalog.parse(text, validate=False)
    except RefError:
        return None if hebrew else text
    if not hebrew:
        return ref.normal()
    he_title = catalog.books[ref.book].he_title
    return ref.hebrew(he_title) if he_title else None


def _with_context(question: str, previous: str, refs: Sequence[str]) -> str | None:
    """Append the previous query and refs in brackets; None if nothing fits."""
    room = MAX_QUERY_CHARS - len(question) - len(" ()")
    kept: list[str] = []
    for ref in refs:
        needed = len(ref) + (len(SEPARATOR) if kept else 0)
        if needed <= room:
            kept.append(ref)
            room -= needed
    if previous and kept:
        room -= len(SEPARATOR)
    previous = _cut_at_space(previous, room)
    parts = [part for part in (previous, *kept) if part]
    if not parts:
        return None
    return f"{question} ({SEPARATOR.join(parts)})"


def _cut_at_space(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    space = text.rfind(" ", 0, limit + 1)
    return text[:space].rstrip(" ,;:") if space > 0 else ""


# Rewriting by a model -----------------------------------------------------------

_LABEL = re.compile(
    r"^(?:(?:standalone|search|rewritten)\s+)?query\s*:\s*"
    r"|^שאילת(?:ה|ת חיפוש)\s*:\s*",
    re.IGNORECASE,
)
_WRAPPERS = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u201e": "\u201c"}
_REFUSAL_START = re.compile(
    r"^(?:i\b|i'm\b|sorry|as an ai|as a language model|unfortunately|here is|"
    r"here's|sure\b|certainly|of course|the user\b|this question|the question|"
    r"the last question|note\b|explanation)"
    r"|^(?:אני |מצטער|סליחה|לא אוכל|אינני|הנה |בטח|כמובן)",
    re.IGNORECASE,
)
_REFUSAL_ANYWHERE = re.compile(
    r"\b(?:standalone|rewrite|rewritten|language model|cannot|can't|can not|"
    r"unable to|i apologi[sz]e)\b"
    r"|לא אוכל|איני יכול|אינני יכול",
    re.IGNORECASE,
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z\u05d0-\u05ea])")


def rewrite_with_model(
    model: AnswerModel,
    question: str,
    history: Sequence[Turn],
    catalog: Catalog,
    *,
    max_tokens: int = 64,
) -> str:
    """Rewrite a follow-up into a standalone search query with an answer model.

    The prompt contains the last ``MODEL_HISTORY_TURNS`` turns. The output is used
    only when it is one line of 3 to ``MAX_QUERY_CHARS`` characters in the
    question's language, is not a refusal or an explanation, and shares a
    word with the question or the history. Otherwise, and when the model
    raises ProviderError, the result of ``rewrite_followup`` is returned.
    Without history the question is returned unchanged and the model is not
    called, because there is nothing to resolve.
    """
    if not history:
        return question
    messages = [
        ChatMessage(role="system", content=REWRITE_PROMPT),
        ChatMessage(role="user", content=_conversation_text(question, history)),
    ]
    try:
        output = "".join(
            piece
            for piece in model.stream(messages, max_tokens=max_tokens)
            if isinstance(piece, str)
        )
    except ProviderError as error:
        logger.warning(
            "Follow-up rewrite by %s failed, using the rules instead: %s",
            model.name,
            error,
        )
        return rewrite_followup(question, history, catalog)
    query = _clean_output(output)
    problem = _rejection(query, question, history)
    if problem is not None:
        logger.info(
            "Rejected the follow-up rewrite %r by %s (%s); using the rules instead",
            query[:80],
            model.name,
            problem,
        )
        return rewrite_followup(question, history, catalog)
    return query


def _conversation_text(question: str, history: Sequence[Turn]) -> str:
    lines = ["Conversation so far:"]
    for number, turn in enumerate(history[-MODEL_HISTORY_TURNS:], start=1):
        lines.append(f"Question {number}: {' '.join(turn.question.split())}")
        if turn.refs:
            lines.append(f"Sources {number}: {SEPARATOR.join(turn.refs[:3])}")
    lines.append("")
    lines.append(f"Last question: {' '.join(question.split())}")
    return "\n".join(lines)


def _clean_output(output: str) -> str:
    """Strip spaces, one label such as "Query:" and quotes around the query."""
    query = _LABEL.sub("", output.strip()).strip()
    while len(query) >= 2 and _WRAPPERS.get(query[0]) == query[-1]:
        query = query[1:-1].strip()
    return query


def _rejection(query: str, question: str, history: Sequence[Turn]) -> str | None:
    """Return why a model's output is not a usable query, or None if it is."""
    if "\n" in query or "\r" in query:
        return "more than one line"
    if not MIN_MODEL_QUERY_CHARS <= len(query) <= MAX_QUERY_CHARS:
        return f"{len(query)} characters"
    if _REFUSAL_START.search(query) or _REFUSAL_ANYWHERE.search(query):
        return "a refusal or an explanation"
    sentences = _SENTENCE_BREAK.split(query)
    if len(sentences) > 1 and any(len(s.split()) >= 3 for s in sentences[1:]):
        return "more than one sentence"
    if detect_language(query) != detect_language(question):
        return "a different language than the question"
    known = _words(question)
    for turn in history:
        known |= (
            _words(turn.question) | _words(turn.query) | _words(" ".join(turn.refs))
        )
    if not _words(query) & known:
        return "no word in common with the conversation"
    return None


def _words(text: str) -> set[str]:
    words: set[str] = set()
    for token in normalize(text).split():
        if token in STOP_WORDS or len(token) < 2:
            continue
        words.add(token)
        words.update(prefix_variants(token))
    return words
