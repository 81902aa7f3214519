"""The offline reranker's blend of signals, on hand-made vectors."""

from __future__ import annotations

import numpy as np
import pytest

from torah_study.index.base import SegmentRecord
from torah_study.retrieval.hybrid import Candidate
from torah_study.retrieval.query import QueryAnalysis
from torah_study.retrieval.rerank import (
    COSINE_CEILING,
    QUOTE_PHRASE_SHARE,
    QUOTE_SOURCE_BONUS,
    WEIGHTS,
    OfflineReranker,
)


def _unit(cosine: float) -> tuple[np.ndarray, np.ndarray]:
    """Return a query vector and a passage vector with the given cosine."""
    query = np.array([1.0, 0.0], dtype=np.float32)
    passage = np.array([cosine, (1 - cosine**2) ** 0.5], dtype=np.float32)
    return query, passage


def _score(record: SegmentRecord, language: str) -> float:
    query, passage = _unit(COSINE_CEILING)
    analysis = QueryAnalysis(
        text="What are the steps of repentance?",
        language=language,
        terms=["steps", "repentance"],
    )
    [scored] = OfflineReranker(None).rerank(
        analysis, query, [(Candidate(record.ref), record)], {record.ref: passage}
    )
    return scored.score


def test_dense_carries_the_word_signals_across_languages() -> None:
    hebrew_only = SegmentRecord(
        "Mishneh Torah, Repentance 2:2",
        "Mishneh Torah, Repentance",
        "00002.00002",
        he="ומה היא התשובה הוא שיעזוב החוטא חטאו",
    )
    # An English question cannot share words with a Hebrew-only passage, so
    # a perfect cosine scores what dense and the word signals together weigh.
    full = WEIGHTS["dense"] + WEIGHTS["coverage"] + WEIGHTS["phrase"]
    assert abs(_score(hebrew_only, "en") - full) < 1e-6
    # For a Hebrew question the word signals are measured: one of the two
    # terms, "repentance", is in the ref's title.
    expected = WEIGHTS["dense"] + WEIGHTS["coverage"] / 2
    assert abs(_score(hebrew_only, "he") - expected) < 1e-6


def test_passage_in_the_question_language_keeps_the_blend() -> None:
    english = SegmentRecord(
        "Genesis 1:1",
        "Genesis",
        "00001.00001",
        en="In the beginning God created the heaven and the earth.",
    )
    assert abs(_score(english, "en") - WEIGHTS["dense"]) < 1e-6


def test_quote_source_outranks_later_quotations(services) -> None:  # type: ignore[no-untyped-def]
    # Berakhot 13b:32 quotes the opening of the Shema from Deuteronomy 6:4.
    verse, talmud = services.store.get(["Deuteronomy 6:4", "Berakhot 13b:32"])
    analysis = QueryAnalysis(
        text="שמע ישראל",
        language="he",
        terms=["שמע", "ישראל"],
    )
    candidates = [(Candidate(r.ref), r) for r in (talmud, verse)]

    ranked = OfflineReranker(None).rerank(analysis, None, candidates, {})
    scored = {s.record.ref: s for s in ranked}

    assert [s.record.ref for s in ranked] == ["Deuteronomy 6:4", "Berakhot 13b:32"]
    source, quotation = scored["Deuteronomy 6:4"], scored["Berakhot 13b:32"]
    assert source.phrase >= QUOTE_PHRASE_SHARE
    assert quotation.phrase >= QUOTE_PHRASE_SHARE
    plain = WEIGHTS["coverage"] * source.coverage + WEIGHTS["phrase"] * source.phrase
    assert source.score == pytest.approx(plain + QUOTE_SOURCE_BONUS)
    assert quotation.score == pytest.approx(
        WEIGHTS["coverage"] * quotation.coverage + WEIGHTS["phrase"] * quotation.phrase
    )


def test_single_quotation_gets_no_bonus(services) -> None:  # type: ignore[no-untyped-def]
    [verse] = services.store.get(["Deuteronomy 6:4"])
    analysis = QueryAnalysis(
        text="שמע ישראל",
        language="he",
        terms=["שמע", "ישראל"],
    )

    [scored] = OfflineReranker(None).rerank(
        analysis, None, [(Candidate(verse.ref), verse)], {}
    )

    plain = WEIGHTS["coverage"] * scored.coverage + WEIGHTS["phrase"] * scored.phrase
    assert scored.score == pytest.approx(plain)
