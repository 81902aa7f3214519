"""Retrieval over an index built from the real export."""

from __future__ import annotations

import pytest

from torah_study.index.base import Filters, Hit
from torah_study.library.hebrew import strip_marks
from torah_study.retrieval.hybrid import reciprocal_rank_fusion

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


def _refs(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.record.ref for p in result.passages]


def test_love_your_neighbor_english(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve(
        "Where does the Torah say to love your neighbor as yourself?"
    )
    assert result.mode == "search"
    assert "Leviticus 19:18" in _refs(result)


def test_love_your_neighbor_hebrew(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve("איפה כתוב ואהבת לרעך כמוך?")
    assert result.mode == "search"
    assert "Leviticus 19:18" in _refs(result)


def test_hebrew_question_finds_the_mishnah(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve("מאימתי קורין את שמע בערבית")
    # The Talmud's first line (Berakhot 2a:1) quotes this mishnah word for word.
    assert {"Mishnah Berakhot 1:1", "Berakhot 2a:1"} & set(_refs(result))


def test_lookup_returns_range_in_both_languages(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve("Show me Genesis 1:1-3")
    assert result.mode == "lookup"
    assert _refs(result) == ["Genesis 1:1", "Genesis 1:2", "Genesis 1:3"]
    for passage in result.passages:
        assert passage.record.he
        assert passage.record.en
    assert strip_marks(result.passages[2].record.he).startswith("ויאמר אלהים")
    assert result.passages[0].he_ref == "בראשית א:א"


def test_lookup_of_talmud_amud(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve("ברכות ב.")
    assert result.mode == "lookup"
    assert _refs(result)[0] == "Berakhot 2a:1"
    assert all(ref.startswith("Berakhot 2a:") for ref in _refs(result))


def test_commentary_lookup(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve("What does Rashi say on Genesis 1:5?")
    assert _refs(result)[0].startswith("Rashi on Genesis 1:5:")


def test_out_of_library_question_abstains(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve("Who won the 2018 football World Cup?")
    assert result.mode == "abstain"
    assert result.passages == []


def test_unknown_work_abstains(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve(
        "What does the Tanya say about the divine soul?"
    )
    assert result.mode == "abstain"
    assert "Tanya" in result.message


def test_invalid_ref_explains(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve("What does Exodus 45:2 say?")
    assert result.mode == "invalid_ref"
    assert "Exodus has 40 chapters" in result.message
    assert result.passages == []


def test_book_filter_restricts_results(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve(
        "disciples of Aaron loving peace", Filters(books=("Pirkei Avot",))
    )
    assert result.passages
    assert all(p.record.book == "Pirkei Avot" for p in result.passages)


def test_category_filter_restricts_results(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve(
        "Sabbath day", Filters(categories=("Mishnah",))
    )
    assert result.passages
    assert all("Mishnah" in p.record.categories for p in result.passages)


def test_dense_leg_finds_paraphrase(services) -> None:  # type: ignore[no-untyped-def]
    # "Fellow" and "yourself" are not in the JPS wording of Leviticus 19:18
    # ("love thy neighbour as thyself"); the dense leg is called alone here.
    vector = services.embeddings.embed_queries(["love your fellow as yourself"])[0]
    hits = services.store.dense(vector, 10)
    assert "Leviticus 19:18" in [hit.ref for hit in hits]


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion(
        [("keyword", [Hit("a", 9.0), Hit("b", 5.0)]), ("dense", [Hit("b", 0.9)])], k=60
    )
    assert [c.ref for c in fused] == ["b", "a"]
    assert fused[0].rrf == pytest.approx(1 / 62 + 1 / 61)
    assert fused[0].keyword_rank == 2
    assert fused[0].dense_rank == 1


def test_work_sefaria_has_but_the_library_lacks(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve("What does the Zohar say about creation?")
    assert result.mode == "abstain"
    assert result.passages == []
    assert result.message == "Zohar is not in the library."


def test_missing_commentary_on_a_ref_abstains(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve("What does Ramban say about Genesis 1:1?")
    assert result.mode == "abstain"
    assert result.message == "Ramban is not in the library."


def test_hebrew_question_about_a_missing_work(services) -> None:  # type: ignore[no-untyped-def]
    result = services.retriever.retrieve("מה אומר הזוהר על בריאת העולם?")
    assert result.mode == "abstain"
    assert result.message == "החיבור זוהר אינו בספרייה."
