"""The chavruta rules and the fixed texts the service answers with."""

from __future__ import annotations

from collections.abc import Sequence

from torah_study.answer.llm.base import AnswerModel, ChatMessage, ProviderError
from torah_study.retrieval.retriever import Passage

# Each source is cut to this many characters in the prompt: small local models
# spend about a second of prompt evaluation per 150 tokens on two CPU cores.
SOURCE_CHARS = 500

SYSTEM_PROMPT = """You are a chavruta, a study partner for Jewish texts.
Rules:
1. Answer ONLY from the numbered sources below. If they do not answer the
question, say that the library's sources do not answer it.
2. Cite every claim with the source number in square brackets, like [1].
Never cite a number that is not listed.
3. Structure: a short answer (one or two sentences), then the sources you used
(ref and a short exact quote), then a brief explanation.
4. Quote only words that appear in the source, inside double quotes. Hebrew
quotes get an English translation after them.
5. Never give a halakhic ruling. For practical questions, present what the
sources say and end by advising the learner to ask a rabbi.
6. Reply in the language of the question ({language})."""

LANGUAGE_NAMES = {"he": "Hebrew", "en": "English"}

ABSTAIN = {
    "en": "The library does not contain a source that answers this question, so I "
    "cannot answer it from the texts.",
    "he": "בספרייה אין מקור שעונה על השאלה הזאת, ולכן איני יכול לענות עליה מן הטקסטים.",
}
# For a practical question the library does not answer: no sources to refer to.
RABBI_NO_SOURCES = {
    "en": "This is a practical question: please ask a rabbi.",
    "he": "זו שאלה מעשית: יש לשאול רב.",
}
RABBI = {
    "en": "This is a practical question: the sources above are for study, not a "
    "ruling. Please ask a rabbi.",
    "he": "זו שאלה מעשית: המקורות שלמעלה הם ללימוד ולא לפסיקה. יש לשאול רב.",
}
SOURCES_INTRO = {
    "en": "Here are the passages from the library that bear on your question:",
    "he": "אלה המקורות מן הספרייה הנוגעים לשאלתך:",
}
LOOKUP_INTRO = {"en": "Here is the text you asked for:", "he": "הנה הטקסט שביקשת:"}


def format_sources(passages: Sequence[Passage]) -> str:
    blocks = []
    for number, passage in enumerate(passages, start=1):
        record = passage.record
        lines = [
            f"[{number}] {record.ref}"
            + (f" ({passage.he_ref})" if passage.he_ref else "")
        ]
        if record.he:
            lines.append(f"Hebrew: {record.he[:SOURCE_CHARS]}")
        if record.en:
            lines.append(f"English: {record.en[:SOURCE_CHARS]}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


PRACTICAL_NOTE = """This is a practical question. Teach what the sources rule, \
naming them ("The Shulchan Arukh rules that ... [2]"). Do not tell the learner \
what to do: never write "you may", "you must" or "you should". End with the \
advice to ask a rabbi."""


def build_messages(
    question: str,
    language: str,
    passages: Sequence[Passage],
    *,
    practical: bool = False,
) -> list[ChatMessage]:
    """Return the chat messages for an answer model: rules, sources, question."""
    system = SYSTEM_PROMPT.format(language=LANGUAGE_NAMES.get(language, "English"))
    if practical:
        system = f"{system}\n\n{PRACTICAL_NOTE}"
    user = f"Sources:\n\n{format_sources(passages)}\n\nQuestion: {question}"
    return [ChatMessage("system", system), ChatMessage("user", user)]


EXPAND_PROMPT = """Write two or three sentences that a classical Jewish text \
(Tanakh, Mishnah, Talmud, Mishneh Torah or Shulchan Arukh) might contain if it \
answered the question below: first in Hebrew, then in English. Use the \
vocabulary such texts use. Give no refs and no explanation."""
# A hypothetical passage longer than this is cut: it only feeds the search.
MAX_PASSAGE_CHARS = 800


def hypothetical_passage(
    model: AnswerModel, question: str, *, max_tokens: int = 160
) -> str:
    """Return a passage the model imagines for ``question``, for search only.

    The passage is never shown or cited: it gives a weak search words and a
    vector closer to the texts that answer the question. A model error gives
    an empty passage, so the retry uses its other reformulations alone.
    """
    messages = [
        ChatMessage("system", EXPAND_PROMPT),
        ChatMessage("user", question),
    ]
    try:
        text = "".join(
            piece
            for piece in model.stream(messages, max_tokens=max_tokens)
            if isinstance(piece, str)
        )
    except ProviderError:
        return ""
    return text.strip()[:MAX_PASSAGE_CHARS]
