"""The PostgreSQL store on a real server: schema, text search, fusion, concurrency."""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from library_data import REPO, TEST_BOOKS, needs_hunspell
from servers import fresh_postgres_database
from torah_study.config import Settings, libpq_url
from torah_study.index import pg_search
from torah_study.index.base import SegmentRecord, StoreError
from torah_study.index.factory import open_store
from torah_study.index.pg_schema import SchemaError
from torah_study.index.postgres import PostgresStore
from torah_study.retrieval.hybrid import reciprocal_rank_fusion, run_legs
from torah_study.retrieval.query import analyze

pytestmark = pytest.mark.corpus


@pytest.fixture()
def empty_store_url(postgres_url: str) -> str:
    return libpq_url(fresh_postgres_database(postgres_url))


def _answerable_questions() -> list[dict[str, Any]]:
    """Questions of the evaluation set whose answers are in the test library."""
    path = REPO / "eval" / "questions.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [
        row
        for row in rows
        if row["kind"] == "answerable"
        and any(str(ref).rsplit(" ", 1)[0] in TEST_BOOKS for ref in row["gold_refs"])
    ]


# Schema and settings ---------------------------------------------------------


@needs_hunspell
def test_schema_is_idempotent(empty_store_url: str) -> None:
    first = PostgresStore(empty_store_url, dimension=8)
    second = PostgresStore(empty_store_url, dimension=8)
    try:
        assert first.hebrew_dictionary
        assert second.count() == 0
        assert second.vector_count() == 0
    finally:
        first.close()
        second.close()


def test_other_dimension_is_rejected(empty_store_url: str) -> None:
    PostgresStore(empty_store_url, dimension=8).close()
    with pytest.raises(SchemaError, match="8-dimensional vectors"):
        PostgresStore(empty_store_url, dimension=16)


def test_read_only_role_opens_store(
    postgres_library_settings: Settings, postgres_services: Any
) -> None:
    """A role that may only read (as on a read replica) searches the library."""
    import uuid

    from sqlalchemy.engine import make_url

    url = postgres_library_settings.retrieval_database
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN")
        connection.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        connection.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    reader_url = make_url(url).set(username=role).render_as_string(hide_password=False)
    store = PostgresStore(reader_url, dimension=384, install_files=False)
    try:
        assert store.count() == postgres_services.store.count()
        assert "Leviticus 19:18" in [h.ref for h in store.keyword("ואהבת לרעך", 10)]
        (vector,) = store.vectors_for(["Leviticus 19:18"]).values()
        assert store.dense(vector, 5)[0].ref == "Leviticus 19:18"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            store.delete_book("Genesis")
    finally:
        store.close()
    assert postgres_services.store.span("Genesis", "", "~", 1)


def test_retrieval_database_defaults(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        retrieval_backend="postgres",
        database_url="postgresql+psycopg://user:secret@db.example/torah",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert settings.retrieval_database == "postgresql://user:secret@db.example/torah"
    sqlite = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/a.db"})
    with pytest.raises(StoreError, match="needs a PostgreSQL URL"):
        open_store(sqlite, 8)
    unset = settings.model_copy(update={"database_url": None})
    with pytest.raises(StoreError, match="TORAH_STUDY_RETRIEVAL_DATABASE_URL"):
        open_store(unset, 8)
    missing = settings.model_copy(
        update={"database_url": f"postgresql://nobody@/none?host={tmp_path}"}
    )
    with pytest.raises(StoreError, match="Cannot connect to the retrieval database"):
        open_store(missing, 8)


def test_factory_opens_each_backend(tmp_path: Path, empty_store_url: str) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert type(open_store(settings, 8)).__name__ == "LanceStore"
    settings = settings.model_copy(
        update={
            "retrieval_backend": "postgres",
            "retrieval_database_url": empty_store_url,
        }
    )
    store = open_store(settings, 8)
    assert isinstance(store, PostgresStore)
    store.close()


# Text search configuration -----------------------------------------------------


def _lexemes(url: str, text: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT to_tsvector(%s::regconfig, %s)::text",
            (pg_search.CONFIGURATION, text),
        ).fetchone()
    assert row is not None
    return str(row[0])


@needs_hunspell
def test_configuration_strips_marks_and_prefixes(empty_store_url: str) -> None:
    PostgresStore(empty_store_url, dimension=8).close()
    # וְהָאָרֶץ: vav and he prefixes, niqqud.
    assert _lexemes(empty_store_url, "וְהָאָרֶץ") == "'ארץ':1"
    # Maqaf splits כָּל־הָאָרֶץ into two words.
    assert _lexemes(empty_store_url, "כָּל־הָאָרֶץ") == "'ארץ':2 'כל':1"
    # Cantillation (etnachta U+0591, tipcha U+0596) goes too.
    assert _lexemes(empty_store_url, "אֱלֹהִ֑ים") == _lexemes(empty_store_url, "אלהים")
    assert _lexemes(empty_store_url, "loving kindness") == "'kind':2 'love':1"


@needs_hunspell
def test_configuration_without_dictionary(empty_store_url: str, caplog) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(empty_store_url) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        sharedir = pg_search.server_sharedir(connection)
        assert sharedir is not None
        pg_search.install_dictionary_files(sharedir)
        with caplog.at_level(logging.WARNING):
            hebrew = pg_search.create_configuration(connection, "no_such_dictionary")
        connection.commit()
    assert hebrew is False
    assert "without the Hebrew dictionary" in caplog.text
    # Niqqud still goes; the prefixes stay.
    assert _lexemes(empty_store_url, "וְהָאָרֶץ") == "'והארץ':1"
    with psycopg.connect(empty_store_url) as connection:
        assert pg_search.create_configuration(connection) is False
        assert pg_search.create_configuration(connection, upgrade=True) is True
        connection.commit()
    assert _lexemes(empty_store_url, "וְהָאָרֶץ") == "'ארץ':1"


def test_install_without_hunspell(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "tsearch_data").mkdir()
    with caplog.at_level(logging.WARNING):
        setup = pg_search.install_dictionary_files(tmp_path, tmp_path / "none")
    assert setup.hebrew_dictionary is False
    assert "hunspell-he not found" in caplog.text
    rules = (tmp_path / "tsearch_data" / f"{pg_search.RULES_NAME}.rules").read_text(
        encoding="utf-8"
    )
    assert len(rules.splitlines()) == len(pg_search.NIQQUD) == 51
    assert "\u05be" not in rules


@needs_hunspell
def test_keyword_normalises_raw_query_text(postgres_services) -> None:  # type: ignore[no-untyped-def]
    """Pointed, prefixed text given straight to the store finds the plain word."""
    store = postgres_services.store
    pointed = [hit.ref for hit in store.keyword("וְאָהַבְתָּ לְרֵעֲךָ", 20)]
    plain = [hit.ref for hit in store.keyword("אהבת רעך", 20)]
    assert "Leviticus 19:18" in pointed
    assert pointed == plain


def test_iterative_scan_fills_filtered_ann(postgres_library_settings: Settings) -> None:
    """On the HNSW index, a filtered query returns k rows only with iterative scans."""
    from pgvector.psycopg import register_vector

    from torah_study.index import pg_queries
    from torah_study.index.base import DenseLeg, Filters
    from torah_study.index.postgres import tune_ann_search

    url = postgres_library_settings.retrieval_database
    with psycopg.connect(url) as connection:
        register_vector(connection)
        row = connection.execute(
            "SELECT embedding FROM retrieval_vectors WHERE ref = 'Leviticus 19:18'"
        ).fetchone()
        assert row is not None
        leg = DenseLeg(
            "dense", row[0].to_numpy(), 100, Filters(categories=("Mishnah",))
        )
        sql, params = pg_queries.dense_query(leg)
        # Make the planner use the HNSW index, as it does on a large table.
        connection.execute("SET enable_seqscan = off")
        connection.execute("SET enable_bitmapscan = off")
        plan = connection.execute("EXPLAIN " + sql, params).fetchall()
        assert any("retrieval_vectors_embedding_hnsw" in str(line[0]) for line in plan)
        connection.execute("SET hnsw.iterative_scan = off")
        without = connection.execute(sql, params).fetchall()
        with connection.transaction():
            tune_ann_search(connection, 40, leg.k)
            filled = connection.execute(sql, params).fetchall()
    assert len(without) < 100
    assert len(filled) == 100


# Fusion ------------------------------------------------------------------------


def test_sql_fusion_equals_python(postgres_services) -> None:  # type: ignore[no-untyped-def]
    retriever = postgres_services.retriever
    store = postgres_services.store
    compared = 0
    for row in _answerable_questions()[:12]:
        analysis = analyze(str(row["question"]), retriever.catalog)
        analysis.translations = retriever._translations(analysis.terms)
        vector = retriever.embeddings.embed_queries([analysis.text])[0]
        legs = retriever._legs(analysis, retriever._scope(analysis), vector, 100, 40)
        in_sql = store.fuse(legs, 60)
        in_python = reciprocal_rank_fusion(run_legs(store, legs), k=60)
        assert [c.ref for c in in_sql] == [c.ref for c in in_python], row["id"]
        for a, b in zip(in_sql, in_python, strict=True):
            assert a.rrf == b.rrf
            assert (a.keyword_rank, a.dense_rank) == (b.keyword_rank, b.dense_rank)
            assert a.keyword_score == pytest.approx(b.keyword_score)
            assert a.dense_score == pytest.approx(b.dense_score)
        compared += len(in_sql)
    assert compared > 1000


# Retrieval end to end ----------------------------------------------------------


def test_retriever_agrees_across_backends(services, postgres_services) -> None:  # type: ignore[no-untyped-def]
    """Both backends give the same best passage for nearly every question.

    The keyword legs rank differently (LanceDB BM25, PostgreSQL ``ts_rank``),
    so the tolerance allows 2 of 36 questions to differ at the top, a mean
    top-5 overlap of 0.6, and one question fewer with a gold ref in the top 5.
    """
    questions = _answerable_questions()
    assert len(questions) >= 30
    same_top = 0
    overlap = 0.0
    gold = {"lance": 0, "postgres": 0}
    for row in questions:
        lance = [
            p.record.ref for p in services.retriever.retrieve(row["question"]).passages
        ]
        pg = [
            p.record.ref
            for p in postgres_services.retriever.retrieve(row["question"]).passages
        ]
        same_top += lance[:1] == pg[:1]
        overlap += len(set(lance) & set(pg)) / max(len(lance), len(pg), 1)
        expected = set(row["gold_refs"])
        gold["lance"] += bool(expected & set(lance))
        gold["postgres"] += bool(expected & set(pg))
    assert same_top >= len(questions) - 2
    assert overlap / len(questions) >= 0.6
    assert gold["postgres"] >= gold["lance"] - 1


def test_retriever_python_fusion_matches(postgres_services) -> None:  # type: ignore[no-untyped-def]
    retriever = postgres_services.retriever
    python_fusion = replace(retriever.settings, fuse_in_store=False)
    other = type(retriever)(
        retriever.store,
        retriever.catalog,
        retriever.embeddings,
        retriever.reranker,
        python_fusion,
        lexicon=retriever.lexicon,
    )
    for row in _answerable_questions()[:6]:
        in_sql = retriever.retrieve(row["question"])
        in_python = other.retrieve(row["question"])
        assert in_sql.ranking == in_python.ranking, row["id"]


# Concurrency -------------------------------------------------------------------


def _generations(records: list[SegmentRecord]) -> tuple[list[SegmentRecord], ...]:
    """Two versions of one real book that differ in every record's digest."""
    old = [replace(r, digest=f"old-{r.digest}") for r in records]
    new = [replace(r, digest=f"new-{r.digest}") for r in records]
    return old, new


def _read_book(url: str, book: str, rounds: int, queue) -> None:  # type: ignore[no-untyped-def]
    """Read a book repeatedly in another process; report what each read saw."""
    store = PostgresStore(url, dimension=8, pool_size=2, install_files=False)
    seen = []
    try:
        for _ in range(rounds):
            records = store.span(book, "", "~", 100_000)
            seen.append((len(records), sorted({r.digest[:3] for r in records})))
    finally:
        store.close()
    queue.put(seen)


def test_readers_see_old_or_new_book(postgres_services, empty_store_url: str) -> None:  # type: ignore[no-untyped-def]
    book = "Pirkei Avot"
    records = postgres_services.store.span(book, "", "~", 100_000)
    search = [r.he + " " + r.en for r in records]
    old, new = _generations(records)
    store = PostgresStore(empty_store_url, dimension=8, pool_size=8)
    store.replace_book(book, old, search)
    stop = threading.Event()
    errors: list[BaseException] = []
    observed: list[tuple[int, list[str]]] = []

    def read() -> None:
        try:
            while not stop.is_set():
                found = store.span(book, "", "~", 100_000)
                observed.append((len(found), sorted({r.digest[:3] for r in found})))
                hits = store.keyword(
                    "Moses Torah Sinai",
                    5,
                )
                assert hits
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=_read_book, args=(empty_store_url, book, 40, queue)
    )
    process.start()
    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for round_number in range(20):
            store.replace_book(book, new if round_number % 2 == 0 else old, search)
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        from_process = queue.get(timeout=120)
        process.join(timeout=60)
        store.close()
    assert not errors
    assert process.exitcode == 0
    assert len(observed) > 20
    assert len(from_process) == 40
    for count, generations in [*observed, *from_process]:
        assert count == len(records)
        assert generations in (["new"], ["old"])
    assert {tuple(g) for _, g in observed} == {("new",), ("old",)}
