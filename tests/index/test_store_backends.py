"""Store behaviour on both backends, over the test library of real texts.

The PostgreSQL store contains a copy of the LanceDB index (same records,
keyword texts and vectors), so both must return the same records for
lookups and comparable rankings for searches.
"""

from __future__ import annotations

import numpy as np
import pytest

from torah_study.index.base import Filters, SegmentStore
from torah_study.library.hebrew import normalize
from torah_study.retrieval.query import content_terms, keyword_query

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module", params=["lance", "postgres"])
def store(request: pytest.FixtureRequest) -> SegmentStore:
    name = "services" if request.param == "lance" else "postgres_services"
    services = request.getfixturevalue(name)
    result: SegmentStore = services.store
    return result


@pytest.fixture(scope="module")
def lance_store(services) -> SegmentStore:  # type: ignore[no-untyped-def]
    result: SegmentStore = services.store
    return result


def _search(
    store: SegmentStore, question: str, k: int = 20, **filters: tuple[str, ...]
) -> list[str]:
    """Run the keyword leg the way the retriever does: normalised terms."""
    query = keyword_query(content_terms(question))
    return [hit.ref for hit in store.keyword(query, k, Filters(**filters))]


def test_counts_match_lance(store: SegmentStore, lance_store: SegmentStore) -> None:
    assert store.count() == lance_store.count()
    assert store.vector_count() == lance_store.vector_count()
    assert store.books() == lance_store.books()


def test_get_keeps_order_and_skips_unknown(store: SegmentStore) -> None:
    records = store.get(["Leviticus 19:18", "Nowhere 1:1", "Genesis 1:1"])
    assert [r.ref for r in records] == ["Leviticus 19:18", "Genesis 1:1"]
    assert "ואהבת לרעך כמוך" in normalize(records[0].he)
    assert "Torah" in records[1].categories


def test_span_is_ordered_and_limited(
    store: SegmentStore, lance_store: SegmentStore
) -> None:
    chapter = store.span("Genesis", "00001.", "00002.", 100)
    assert [r.ref for r in chapter] == [f"Genesis 1:{v}" for v in range(1, 32)]
    first = store.span("Genesis", "00001.", "00002.", 5)
    assert [r.ref for r in first] == [f"Genesis 1:{v}" for v in range(1, 6)]
    expected = lance_store.span("Berakhot", "00004.", "00005.", 1000)
    assert store.span("Berakhot", "00004.", "00005.", 1000) == expected


def test_neighbours_cross_chapters(store: SegmentStore) -> None:
    (record,) = store.get(["Genesis 2:1"])
    before, after = store.neighbours(record, 2, 2)
    assert [r.ref for r in before] == ["Genesis 1:30", "Genesis 1:31"]
    assert [r.ref for r in after] == ["Genesis 2:2", "Genesis 2:3"]


def test_vectors_match_lance(store: SegmentStore, lance_store: SegmentStore) -> None:
    refs = ["Leviticus 19:18", "Pirkei Avot 1:1", "Genesis 1:1"]
    vectors = store.vectors_for(refs)
    expected = lance_store.vectors_for(refs)
    assert sorted(vectors) == sorted(expected) == ["Leviticus 19:18", "Pirkei Avot 1:1"]
    for ref, vector in expected.items():
        assert vectors[ref].dtype == np.float32
        np.testing.assert_allclose(vectors[ref], vector, rtol=1e-6)
    assert store.vector_digests("Pirkei Avot") == lance_store.vector_digests(
        "Pirkei Avot"
    )


def test_bilingual_yields_both_texts(store: SegmentStore) -> None:
    pairs = 0
    for he, en in store.bilingual():
        assert he and en
        pairs += 1
    assert pairs > 1000


@pytest.mark.parametrize(
    ("question", "ref"),
    [
        # Plain and pointed spellings of the same words.
        ("ואהבת לרעך כמוך", "Leviticus 19:18"),
        ("וְאָהַבְתָּ לְרֵעֲךָ כָּמוֹךָ", "Leviticus 19:18"),
        # Prefixed forms: ו and ה before the noun, ב before the name.
        ("בראשית ברא אלהים את השמים ואת הארץ", "Genesis 1:1"),
        ("שמע ישראל", "Deuteronomy 6:4"),
        # Maqaf joins words in the text; the query has them apart.
        ("על שלשה דברים העולם עומד", "Pirkei Avot 1:2"),
        # English stemming: "loving" finds "love".
        ("loving your neighbour as yourself", "Leviticus 19:18"),
        ("Jacob dreamed of a ladder", "Genesis 28:12"),
    ],
)
def test_keyword_finds_hebrew_and_english(
    store: SegmentStore, question: str, ref: str
) -> None:
    assert ref in _search(store, question)


def test_keyword_filters(store: SegmentStore) -> None:
    hits = _search(store, "love", 50, books=("Leviticus",))
    assert hits
    assert all(ref.startswith("Leviticus ") for ref in hits)
    hits = _search(store, "blessing", 50, categories=("Mishnah",))
    assert hits
    assert {ref.split(" ")[0] for ref in hits} <= {"Mishnah", "Pirkei"}
    assert _search(store, "love", 50, books=("No Such Book",)) == []
    assert store.keyword("   ", 10) == []


def test_dense_filter_returns_k_rows(store: SegmentStore) -> None:
    """A filter that keeps a small part of the vectors still gets k rows."""
    total = len(store.vector_digests("Pirkei Avot"))
    assert total > 50
    (vector,) = store.vectors_for(["Leviticus 19:18"]).values()
    hits = store.dense(vector, 50, Filters(books=("Pirkei Avot",)))
    assert len(hits) == 50
    assert all(hit.ref.startswith("Pirkei Avot ") for hit in hits)
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    # The exact 50 nearest by cosine, for recall.
    refs = list(store.vector_digests("Pirkei Avot"))
    vectors = store.vectors_for(refs)
    cosine = {
        ref: float(v @ vector / (np.linalg.norm(v) * np.linalg.norm(vector)))
        for ref, v in vectors.items()
    }
    exact = set(sorted(cosine, key=cosine.__getitem__, reverse=True)[:50])
    assert len(exact & {hit.ref for hit in hits}) >= 45
    for hit in hits:
        assert hit.score == pytest.approx(cosine[hit.ref], abs=1e-5)


def test_dense_top_hit_is_itself(store: SegmentStore) -> None:
    (vector,) = store.vectors_for(["Mishnah Berakhot 1:1"]).values()
    hits = store.dense(vector, 10)
    assert hits[0].ref == "Mishnah Berakhot 1:1"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_pointed_and_plain_queries_agree(store: SegmentStore) -> None:
    pointed = "\u05d1\u05bc\u05b0\u05e8\u05b5\u05d0\u05e9\u05c1\u05b4\u05d9\u05ea"
    plain = "\u05d1\u05e8\u05d0\u05e9\u05d9\u05ea"
    hits = _search(store, pointed, 50)
    assert len(hits) == 50
    assert hits == _search(store, plain, 50)
