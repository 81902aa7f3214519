"""Corrective retrieval: reformulate a weak search and try once more."""

from __future__ import annotations

from dataclasses import replace

from torah_study.library.lexicon import Lexicon
from torah_study.retrieval.glossary import translate_terms
from torah_study.retrieval.retriever import Retriever

# Words that occur in no text of the library, so the first search is weak.
NONSENSE = "Zorblat quuxifer wibblesnatch?"
# The Hebrew of Leviticus 19:18, as a model might write it for the question.
PASSAGE = "לא תקם ולא תטר את בני עמך ואהבת לרעך כמוך אני יהוה"


def _retriever(services, expander=None, retry=True) -> Retriever:  # type: ignore[no-untyped-def]
    base = services.retriever
    return Retriever(
        base.store,
        base.catalog,
        base.embeddings,
        base.reranker,
        replace(base.settings, retry=retry),
        base.links,
        expander,
        base.lexicon,
    )


def test_glossary_translates_both_ways() -> None:
    assert translate_terms(["repentance", "charity"]) == ["תשובה", "צדקה"]
    assert translate_terms(["והתשובה"]) == ["repentance", "teshuvah"]
    # Words the glossary does not know, and words already present, add nothing.
    assert translate_terms(["zorblat"]) == []
    assert translate_terms(["shabbat", "שבת"]) == ["sabbath"]


def test_weak_search_retries_with_a_hypothetical_passage(services) -> None:  # type: ignore[no-untyped-def]
    asked: list[str] = []

    def expander(question: str) -> str:
        asked.append(question)
        return PASSAGE

    plain = _retriever(services, retry=False).retrieve(NONSENSE)
    assert plain.mode == "abstain"
    assert not plain.retried
    result = _retriever(services, expander).retrieve(NONSENSE)
    assert asked == [NONSENSE]
    assert result.retried
    assert result.mode == "search"
    assert "Leviticus 19:18" in [p.record.ref for p in result.passages]
    assert {"reformulate", "retry_keyword", "retry_rerank"} <= set(result.timings)


def test_failing_expander_still_abstains(services) -> None:  # type: ignore[no-untyped-def]
    def broken(question: str) -> str:
        raise RuntimeError("model down")

    result = _retriever(services, broken).retrieve(NONSENSE)
    assert result.mode == "abstain"
    assert result.passages == []


def test_strong_search_is_not_retried(services) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    result = _retriever(services, lambda q: calls.append(q) or PASSAGE).retrieve(
        "Where does the Torah say to love your neighbor as yourself?"
    )
    assert result.mode == "search"
    assert not result.retried
    assert calls == []


def test_lexicon_finds_hebrew_only_comment(services) -> None:  # type: ignore[no-untyped-def]
    # Rashi on Genesis 2:11:1 (Pishon is the Nile) has no English in the
    # export, so only the question's words in Hebrew can match it.
    question = (
        "Which river of Egypt does Rashi say the Pishon is, and why is it named so?"
    )
    target = "Rashi on Genesis 2:11:1"
    retriever = _retriever(services)
    found = retriever.retrieve(question)
    assert "נהר" in found.analysis.translations["river"]
    assert "מצרים" in found.analysis.translations["egypt"]
    assert found.mode == "search"
    assert found.passages[0].record.ref == target
    retriever.lexicon = Lexicon()
    without = retriever.retrieve(question)
    assert target not in without.ranking[:5]
