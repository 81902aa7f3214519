"""Follow-up questions rewritten into standalone queries over the real catalog."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from torah_study.answer.llm.base import ChatMessage, ProviderError
from torah_study.conversations.followup import (
    MAX_QUERY_CHARS,
    REWRITE_PROMPT,
    Turn,
    needs_context,
    rewrite_followup,
    rewrite_with_model,
)
from torah_study.library.catalog import Catalog

pytestmark = pytest.mark.corpus

AKEDAH = Turn(
    question="Where is the binding of Isaac?",
    query="Where is the binding of Isaac?",
    refs=("Genesis 22:2", "Genesis 22:9"),
)
PARENTS = Turn(
    question="Where does the Torah command honoring parents?",
    query="Where does the Torah command honoring parents?",
    refs=("Exodus 20:12", "Deuteronomy 5:16"),
)
PARENTS_HE = Turn(
    question="איפה כתוב לכבד את ההורים?",
    query="איפה כתוב לכבד את ההורים?",
    refs=("Exodus 20:12", "Deuteronomy 5:16"),
)
SHEMA = Turn(
    question="When do we say the evening Shema?",
    query="When do we say the evening Shema?",
    refs=("Mishnah Berakhot 1:1", "Berakhot 2a:1"),
)
RASHI_QUESTION = "and what does Rashi say about it?"


class ScriptedModel:
    """An answer model that streams fixed pieces or fails, and records calls."""

    name = "scripted"

    def __init__(self, pieces: Sequence[str], error: str | None = None) -> None:
        self.pieces = list(pieces)
        self.error = error
        self.calls: list[list[ChatMessage]] = []
        self.max_tokens: int | None = None

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str]:
        self.calls.append(list(messages))
        self.max_tokens = max_tokens
        yield from self.pieces
        if self.error is not None:
            raise ProviderError(self.error)


# needs_context ------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        RASHI_QUESTION,
        "What does it say there?",
        "Who wrote it?",
        "Is it true?",
        "Why is that?",
        "What does the verse mean?",
        "Explain this verse",
        "Is the same true for women?",
        "What about Exodus 20:12?",
        "What else does it say about honoring parents?",
        "Also in the Talmud?",
        "What is his name?",
        "Why did God test him?",
        "Who was her mother?",
        "Why?",
        "Tell me more",
        "ומה אומר רש״י עליו?",
        "מה פירוש הפסוק הזה?",
        "מה זה אומר?",
        "מה הוא אומר?",
        "מה כתוב שם?",
        "ולמה?",
        "מה עוד?",
    ],
)
def test_followup_needs_context(catalog: Catalog, question: str) -> None:
    assert needs_context(question, catalog)


@pytest.mark.parametrize(
    "question",
    [
        "What does Rashi say on Genesis 1:1?",
        "Where does the Torah say that we must honor parents?",
        "Where does it say that we must love the stranger?",
        "Is it permitted to carry on Shabbat?",
        "How long does it take to digest meat?",
        "Can a person eat before he prays?",
        "Is there a mitzvah to eat matzah?",
        "Where is the verse that says to love your neighbor?",
        "What is the purpose of this world?",
        "What is Shabbat?",
        "What does Rashi say about creation?",
        "What does the Torah say about a man and his wife?",
        "Why did Abraham bind his son?",
        "Do parents have to teach their children Torah?",
        "מה אומר רש״י על בראשית א:א?",
        "מה זה שבת?",
        "מי הוא משה?",
        "איפה כתוב לכבד את ההורים?",
        "מה שכר העולם הזה?",
    ],
)
def test_standalone_question_needs_no_context(catalog: Catalog, question: str) -> None:
    assert not needs_context(question, catalog)


def test_commentator_alone_needs_context_with_catalog(catalog: Catalog) -> None:
    assert needs_context("What does Rashi say?", catalog)
    assert needs_context("מה רש״י אומר?", catalog)
    # Without a catalog "Rashi" is not known as a commentator, so it is a topic.
    assert not needs_context("What does Rashi say?")


def test_empty_question_needs_no_context() -> None:
    assert not needs_context("")
    assert not needs_context(" ?! ")


# rewrite_followup ---------------------------------------------------------------


def test_no_history_unchanged(catalog: Catalog) -> None:
    assert rewrite_followup(RASHI_QUESTION, [], catalog) == RASHI_QUESTION


def test_standalone_question_unchanged(catalog: Catalog) -> None:
    question = "What does Rashi say on Genesis 1:1?"
    assert rewrite_followup(question, [AKEDAH], catalog) == question


def test_rashi_followup_names_commentary(catalog: Catalog) -> None:
    query = rewrite_followup(RASHI_QUESTION, [PARENTS, AKEDAH], catalog)
    assert query == "Rashi on Genesis 22:2"


def test_hebrew_rashi_followup_names_commentary(catalog: Catalog) -> None:
    query = rewrite_followup("ומה אומר רש״י עליו?", [AKEDAH], catalog)
    assert query == 'רש"י על בראשית כב:ב'
    assert catalog.parse(query).normal() == "Rashi on Genesis 22:2"


def test_commentary_source_maps_to_its_verse(catalog: Catalog) -> None:
    question = "What does Rashi say on the binding of Isaac?"
    turn = Turn(question, question, ("Rashi on Genesis 22:2:1",))
    query = rewrite_followup("and Rashi there?", [turn], catalog)
    assert query == "Rashi on Genesis 22:2"


def test_mishnah_followup_names_its_commentator(catalog: Catalog) -> None:
    query = rewrite_followup("And Bartenura?", [SHEMA], catalog)
    assert query == "Bartenura on Mishnah Berakhot 1:1"


def test_missing_commentary_falls_back_to_context(catalog: Catalog) -> None:
    # The library has Rashi on the Talmud but not on the Mishnah.
    assert catalog.find_book("Rashi on Mishnah Berakhot") is None
    query = rewrite_followup("And what does Rashi say about it?", [SHEMA], catalog)
    assert query == (
        "And what does Rashi say about it? (When do we say the evening Shema?; "
        "Mishnah Berakhot 1:1; Berakhot 2a:1)"
    )


def test_generic_followup_gets_previous_ref(catalog: Catalog) -> None:
    question = "What else does it say about honoring parents?"
    query = rewrite_followup(question, [AKEDAH, PARENTS], catalog)
    assert query == (
        "What else does it say about honoring parents? "
        "(Where does the Torah command honoring parents?; "
        "Exodus 20:12; Deuteronomy 5:16)"
    )


def test_hebrew_followup_gets_hebrew_refs(catalog: Catalog) -> None:
    query = rewrite_followup("ומה עוד?", [PARENTS_HE], catalog)
    assert query == "ומה עוד? (איפה כתוב לכבד את ההורים?; שמות כ:יב; דברים ה:טז)"


def test_previous_query_in_other_language_left_out(catalog: Catalog) -> None:
    assert rewrite_followup("ומה עוד?", [PARENTS], catalog) == (
        "ומה עוד? (שמות כ:יב; דברים ה:טז)"
    )
    assert rewrite_followup("Why?", [PARENTS_HE], catalog) == (
        "Why? (Exodus 20:12; Deuteronomy 5:16)"
    )


def test_refs_from_latest_answer_with_sources(catalog: Catalog) -> None:
    unanswered = Turn(
        "What is the meaning of life?", "What is the meaning of life?", ()
    )
    query = rewrite_followup(RASHI_QUESTION, [AKEDAH, unanswered], catalog)
    assert query == "Rashi on Genesis 22:2"


def test_long_previous_query_shortened(catalog: Catalog) -> None:
    previous = " ".join(["Where does the Torah command honoring parents?"] * 10)
    turn = Turn(previous, previous, ("Exodus 20:12",))
    query = rewrite_followup("Why?", [turn], catalog)
    assert len(query) <= MAX_QUERY_CHARS
    assert query.startswith("Why? (Where does the Torah command honoring parents?")
    assert query.endswith("; Exodus 20:12)")


def test_followup_without_refs_or_query_unchanged(catalog: Catalog) -> None:
    turn = Turn("שלום", "שלום", ())
    assert rewrite_followup("Why?", [turn], catalog) == "Why?"


# rewrite_with_model ------------------------------------------------------------


def test_model_rewrite_accepted(catalog: Catalog) -> None:
    model = ScriptedModel(
        ["What does Rashi say about ", "Genesis 22:2, ", "the binding of Isaac?"]
    )
    query = rewrite_with_model(model, RASHI_QUESTION, [AKEDAH], catalog, max_tokens=40)

    assert query == "What does Rashi say about Genesis 22:2, the binding of Isaac?"
    assert model.max_tokens == 40
    (messages,) = model.calls
    assert messages[0] == ChatMessage(role="system", content=REWRITE_PROMPT)
    assert messages[1].role == "user"
    assert "Question 1: Where is the binding of Isaac?" in messages[1].content
    assert "Sources 1: Genesis 22:2; Genesis 22:9" in messages[1].content
    assert messages[1].content.endswith(f"Last question: {RASHI_QUESTION}")


def test_model_rewrite_label_and_quotes_stripped(catalog: Catalog) -> None:
    model = ScriptedModel(['  Query: "Rashi on the binding of Isaac"\n'])
    query = rewrite_with_model(model, RASHI_QUESTION, [AKEDAH], catalog)
    assert query == "Rashi on the binding of Isaac"


def test_model_sees_last_three_turns(catalog: Catalog) -> None:
    model = ScriptedModel(["Rashi on the binding of Isaac"])
    rewrite_with_model(
        model, RASHI_QUESTION, [SHEMA, PARENTS, PARENTS_HE, AKEDAH], catalog
    )
    (messages,) = model.calls
    assert SHEMA.question not in messages[1].content
    assert PARENTS.question in messages[1].content
    assert AKEDAH.question in messages[1].content


@pytest.mark.parametrize(
    "output",
    [
        "The binding of Isaac is told in Genesis 22.\n\nRashi explains that "
        "Abraham was tested to show his love of God.",
        "I'm sorry, but I can't help with that.",
        "Sure! Here is the standalone query: Rashi on Genesis 22:2",
        "Rashi on Genesis 22:2. This is the verse where Abraham is told to go.",
        "Weather forecast for tomorrow",
        "",
        "R.",
        "Rashi " * 60,
    ],
)
def test_bad_model_output_rejected(catalog: Catalog, output: str) -> None:
    model = ScriptedModel([output])
    query = rewrite_with_model(model, RASHI_QUESTION, [AKEDAH], catalog)
    assert query == "Rashi on Genesis 22:2"
    assert len(model.calls) == 1


def test_model_output_in_other_language_rejected(catalog: Catalog) -> None:
    model = ScriptedModel(["What does Rashi say about Genesis 22:2?"])
    query = rewrite_with_model(model, "ומה אומר רש״י עליו?", [AKEDAH], catalog)
    assert query == 'רש"י על בראשית כב:ב'


def test_hebrew_model_rewrite_accepted(catalog: Catalog) -> None:
    model = ScriptedModel(["מה אומר רש״י על עקידת יצחק בבראשית כב:ב?"])
    query = rewrite_with_model(model, "ומה אומר רש״י עליו?", [AKEDAH], catalog)
    assert query == "מה אומר רש״י על עקידת יצחק בבראשית כב:ב?"


def test_provider_error_falls_back(catalog: Catalog) -> None:
    model = ScriptedModel([], error="connection refused")
    query = rewrite_with_model(model, RASHI_QUESTION, [AKEDAH], catalog)
    assert query == "Rashi on Genesis 22:2"


def test_provider_error_mid_stream_falls_back(catalog: Catalog) -> None:
    model = ScriptedModel(["What does Rashi say"], error="connection reset")
    question = "What else does it say about honoring parents?"
    query = rewrite_with_model(model, question, [PARENTS], catalog)
    assert query == (
        "What else does it say about honoring parents? "
        "(Where does the Torah command honoring parents?; "
        "Exodus 20:12; Deuteronomy 5:16)"
    )


def test_no_history_skips_model(catalog: Catalog) -> None:
    model = ScriptedModel(["Rashi on Genesis 22:2"])
    assert rewrite_with_model(model, RASHI_QUESTION, [], catalog) == RASHI_QUESTION
    question = "What does Rashi say on Genesis 1:1?"
    assert rewrite_with_model(model, question, [], catalog) == question
    assert model.calls == []
