"""BM25 keyword ranking of the PostgreSQL store, on the real test library."""

from __future__ import annotations

import math

import psycopg
import pytest

from library_data import needs_hunspell
from servers import fresh_postgres_database
from torah_study.config import libpq_url
from torah_study.index import pg_queries, pg_terms
from torah_study.index.postgres import PostgresStore

pytestmark = pytest.mark.corpus


def _url(postgres_services) -> str:  # type: ignore[no-untyped-def]
    return str(postgres_services.settings.retrieval_database)


def _documents(connection: psycopg.Connection[tuple[object, ...]], lexeme: str) -> int:
    row = connection.execute(
        "SELECT count(*) FROM retrieval_segments "
        "WHERE search_vector @@ array_to_tsvector(ARRAY[%s])::text::tsquery",
        (lexeme,),
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def _lexemes(
    connection: psycopg.Connection[tuple[object, ...]], text: str
) -> list[str]:
    row = connection.execute(
        "SELECT tsvector_to_array(to_tsvector('torah_study_search', %s))", (text,)
    ).fetchone()
    assert row is not None
    return list(row[0])  # type: ignore[call-overload]


@needs_hunspell
def test_term_statistics_match_counts(postgres_services) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(_url(postgres_services)) as connection:
        for word in ("brother", "keeper", "ארץ", "שבת", "lord"):
            row = connection.execute(
                "SELECT documents FROM retrieval_terms WHERE lexeme = %s",
                (_lexemes(connection, word)[0],),
            ).fetchone()
            assert row is not None, word
            assert row[0] == _documents(connection, _lexemes(connection, word)[0])
        totals = connection.execute(
            "SELECT documents, average_length FROM retrieval_term_totals"
        ).fetchone()
        count = connection.execute(
            "SELECT count(*), avg(length(search_vector)) FROM retrieval_segments"
        ).fetchone()
    assert totals is not None
    assert count is not None
    assert totals[0] == count[0]
    assert float(str(totals[1])) == pytest.approx(float(str(count[1])))
    assert float(str(totals[1])) > 1.0


def _expected_score(
    connection: psycopg.Connection[tuple[object, ...]], ref: str, query: str
) -> float:
    """Recompute a segment's BM25 score in Python from its stored tsvector."""
    totals = connection.execute(
        "SELECT documents, average_length FROM retrieval_term_totals"
    ).fetchone()
    assert totals is not None
    total, average = int(str(totals[0])), float(str(totals[1]))
    rows = connection.execute(
        "SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) "
        "FROM retrieval_segments AS s, unnest(s.search_vector) AS u "
        "WHERE s.ref = %s",
        (ref,),
    ).fetchall()
    frequencies = {str(lexeme): int(tf) for lexeme, tf in rows}
    length = len(frequencies)
    score = 0.0
    query_lexemes = {
        lexeme for word in query.split() for lexeme in _lexemes(connection, word)
    }
    for lexeme in query_lexemes & frequencies.keys():
        documents = _documents(connection, lexeme)
        idf = math.log(1 + (total - documents + 0.5) / (documents + 0.5))
        tf = frequencies[lexeme]
        norm = pg_queries.BM25_K1 * (
            1 - pg_queries.BM25_B + pg_queries.BM25_B * length / average
        )
        score += idf * tf * (pg_queries.BM25_K1 + 1) / (tf + norm)
    return score


@needs_hunspell
def test_bm25_score_matches_formula(postgres_services) -> None:  # type: ignore[no-untyped-def]
    store = postgres_services.store
    query = "brother keeper cain abel land"
    hits = store.keyword(query, 50)
    assert "Genesis 4:9" in [h.ref for h in hits[:3]]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    with psycopg.connect(_url(postgres_services)) as connection:
        for hit in (hits[0], hits[10], hits[-1]):
            expected = _expected_score(connection, hit.ref, query)
            assert hit.score == pytest.approx(expected, rel=1e-5), hit.ref


@needs_hunspell
def test_rare_word_outweighs_common_word(postgres_services) -> None:  # type: ignore[no-untyped-def]
    """A segment with the rare word ranks above segments with only the common one."""
    store = postgres_services.store
    with psycopg.connect(_url(postgres_services)) as connection:
        common = _documents(connection, "lord")
        rare = _documents(connection, "keeper")
    assert common > 20 * rare
    hits = store.keyword("lord keeper", 20)
    top = store.get([hits[0].ref])[0]
    assert "keeper" in top.en.lower()


def test_selection_keeps_rarest_within_budget() -> None:
    terms = [
        pg_terms.Term("lord", 9000),
        pg_terms.Term("keeper", 40),
        pg_terms.Term("brother", 700),
        pg_terms.Term("abel", 40),
    ]
    chosen = pg_queries.selecting_terms(terms, 800)
    assert [t.lexeme for t in chosen] == ["abel", "keeper", "brother"]
    assert [t.lexeme for t in pg_queries.selecting_terms(terms, 79)] == ["abel"]
    # The rarest term selects even when it alone is over the budget.
    assert [t.lexeme for t in pg_queries.selecting_terms(terms, 10)] == ["abel"]
    assert pg_queries.selecting_terms([], 10) == []


@needs_hunspell
def test_common_lexemes_select_no_rows(postgres_services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = postgres_services.store
    with psycopg.connect(_url(postgres_services)) as connection:
        common = _documents(connection, "lord")
        rare = _documents(connection, "keeper")
    monkeypatch.setattr(pg_queries, "SELECTING_DOCUMENTS", common - 1)
    hits = store.keyword("lord keeper", 1000)
    assert len(hits) == rare
    with psycopg.connect(_url(postgres_services)) as connection:
        row = connection.execute(
            "SELECT count(*) FROM retrieval_segments WHERE ref = ANY(%s) "
            "AND search_vector @@ 'keeper'::tsquery",
            ([h.ref for h in hits],),
        ).fetchone()
    assert row == (rare,)
    # Within the budget both lexemes select rows.
    monkeypatch.setattr(pg_queries, "SELECTING_DOCUMENTS", common + rare)
    assert len(store.keyword("lord keeper", 100_000)) > common
    # Past MAX_SCANNED selected rows, the rest are not scored.
    monkeypatch.setattr(pg_queries, "MAX_SCANNED", 7)
    assert len(store.keyword("lord", 1000)) == 7


@needs_hunspell
def test_rescoring_reorders_by_term_frequency(postgres_services) -> None:  # type: ignore[no-untyped-def]
    """Rows scored again with their term frequencies come out in BM25 order."""
    store = postgres_services.store
    query = "holy holy holy lord hosts"
    hits = store.keyword(query, 30)
    assert len(hits) == 30
    with psycopg.connect(_url(postgres_services)) as connection:
        expected = [_expected_score(connection, h.ref, query) for h in hits]
    assert [h.score for h in hits] == pytest.approx(expected, rel=1e-5)
    assert expected == sorted(expected, reverse=True)


def test_quoted_lexeme_round_trips(postgres_services) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(_url(postgres_services)) as connection:
        for lexeme in ("it's", "a\\b", "''", "שבת", "x | y"):
            row = connection.execute(
                "SELECT array_to_tsvector(ARRAY[%s]) @@ %s::tsquery",
                (lexeme, pg_queries.quote_lexeme(lexeme)),
            ).fetchone()
            assert row == (True,), lexeme


@needs_hunspell
def test_store_uses_ts_rank_until_finish(postgres_services, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    records = postgres_services.store.span("Pirkei Avot", "", "~", 40)
    assert len(records) == 40
    url = libpq_url(fresh_postgres_database(postgres_url))
    store = PostgresStore(url, dimension=8)
    reader = PostgresStore(url, dimension=8)
    try:
        store.replace_book("Pirkei Avot", records, [f"{r.he} {r.en}" for r in records])
        before = store.keyword("Hillel Shammai", 5)
        # ts_rank with normalisation 1 stays below 1.
        assert 0.0 < before[0].score < 1.0
        store.finish()
        after = store.keyword("Hillel Shammai", 5)
        assert after[0].score > 1.0
        # A store opened before the statistics existed uses them at once.
        assert reader.keyword("Hillel Shammai", 5) == after
        with psycopg.connect(url) as connection:
            row = connection.execute(
                "SELECT documents FROM retrieval_terms WHERE lexeme = 'hillel'"
            ).fetchone()
            assert row == (_documents(connection, "hillel"),)
    finally:
        store.close()
        reader.close()


@needs_hunspell
def test_finish_counts_terms_only_when_needed(
    postgres_services, postgres_url: str
) -> None:  # type: ignore[no-untyped-def]
    """A store that wrote nothing counts terms only when no statistics exist."""
    records = postgres_services.store.span("Pirkei Avot", "", "~", 20)
    url = libpq_url(fresh_postgres_database(postgres_url))
    writer = PostgresStore(url, dimension=8)
    try:
        writer.replace_book("Pirkei Avot", records, [r.en for r in records])
    finally:
        writer.close()
    # A later process (a vector import, say) finishes without having written.
    later = PostgresStore(url, dimension=8)
    try:
        later.finish()
        with psycopg.connect(url) as connection:
            assert connection.execute(
                "SELECT documents FROM retrieval_term_totals"
            ).fetchone() == (20,)
            connection.execute("UPDATE retrieval_term_totals SET documents = 99")
            connection.commit()
        later.finish()
        with psycopg.connect(url) as connection:
            assert connection.execute(
                "SELECT documents FROM retrieval_term_totals"
            ).fetchone() == (99,)
    finally:
        later.close()
