"""Tables, indexes and text search setup of the PostgreSQL retrieval store.

The tables carry a ``retrieval_`` prefix so that retrieval can share one
database with the accounts and conversations tables.
"""

from __future__ import annotations

import logging

import psycopg

from torah_study.index import pg_search
from torah_study.index.base import StoreError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Key of the advisory lock that serialises schema creation between processes.
SCHEMA_LOCK = 0x7467_7374  # "tgst"
HNSW_INDEX = "retrieval_vectors_embedding_hnsw"

SEGMENT_COLUMNS = (
    "ref", "book", "pos", "he", "en", "categories",
    "he_version", "en_version", "he_license", "en_license", "digest",
)  # fmt: skip


def _tables_sql(dimension: int) -> list[str]:
    config = pg_search.CONFIGURATION
    return [
        """CREATE TABLE IF NOT EXISTS retrieval_schema (
            version integer NOT NULL,
            dimension integer NOT NULL,
            hebrew_dictionary boolean NOT NULL
        )""",
        # The keyword index covers the application's normalised copy of the
        # text (``search``), read through the Hebrew configuration: the
        # comparison of both choices is in docs/postgres.md.
        f"""CREATE TABLE IF NOT EXISTS retrieval_segments (
            ref text PRIMARY KEY,
            book text NOT NULL,
            pos text COLLATE "C" NOT NULL,
            he text NOT NULL DEFAULT '',
            en text NOT NULL DEFAULT '',
            categories text[] NOT NULL DEFAULT '{{}}',
            he_version text NOT NULL DEFAULT '',
            en_version text NOT NULL DEFAULT '',
            he_license text NOT NULL DEFAULT '',
            en_license text NOT NULL DEFAULT '',
            digest text NOT NULL DEFAULT '',
            search text NOT NULL DEFAULT '',
            search_vector tsvector GENERATED ALWAYS AS
                (to_tsvector('{config}'::regconfig, search)) STORED
        )""",
        "CREATE INDEX IF NOT EXISTS retrieval_segments_book_pos "
        "ON retrieval_segments (book, pos)",
        "CREATE INDEX IF NOT EXISTS retrieval_segments_search "
        "ON retrieval_segments USING gin (search_vector)",
        "CREATE INDEX IF NOT EXISTS retrieval_segments_categories "
        "ON retrieval_segments USING gin (categories)",
        f"""CREATE TABLE IF NOT EXISTS retrieval_vectors (
            ref text PRIMARY KEY,
            book text NOT NULL,
            categories text[] NOT NULL DEFAULT '{{}}',
            digest text NOT NULL DEFAULT '',
            embedding vector({dimension}) NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS retrieval_vectors_book ON retrieval_vectors (book)",
        "CREATE INDEX IF NOT EXISTS retrieval_vectors_categories "
        "ON retrieval_vectors USING gin (categories)",
        # ``tsquery_or`` is the function behind ``tsquery || tsquery``. It is
        # strict, so the first word's query becomes the state.
        """CREATE OR REPLACE AGGREGATE retrieval_any_word(tsquery)
            (SFUNC = tsquery_or, STYPE = tsquery)""",
    ]


class SchemaError(StoreError):
    """Raised when the database contains retrieval tables this version cannot use."""


def create_schema(
    connection: psycopg.Connection[tuple[object, ...]],
    dimension: int,
    install_files: bool = True,
) -> bool:
    """Create extensions, search configuration and tables unless they exist.

    Returns whether the Hebrew dictionary is in use. ``install_files`` copies
    the dictionary files into the server's share folder when this process can
    write it (a server on this machine). Raises ``SchemaError`` when the
    tables exist with another schema version or vector dimension.

    A complete schema is only read, so a read-only role or a read replica
    can open it.
    """
    with connection.transaction():
        existing = _existing_schema(connection, dimension)
    if existing is not None:
        return existing
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        # Another process may have finished the schema while this one waited.
        existing = _existing_schema(connection, dimension)
        if existing is not None:
            return existing
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        connection.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        if install_files and not _configuration_exists(connection):
            sharedir = pg_search.server_sharedir(connection)
            if sharedir is not None and sharedir.is_dir():
                try:
                    pg_search.install_dictionary_files(sharedir)
                except OSError as error:
                    logger.warning(
                        "Could not install the text search files in %s: %s; "
                        "run `torah-study db setup-search` on the server",
                        sharedir,
                        error,
                    )
        hebrew = pg_search.create_configuration(connection)
        for statement in _tables_sql(dimension):
            connection.execute(statement)
        row = connection.execute("SELECT 1 FROM retrieval_schema").fetchone()
        if row is None:
            connection.execute(
                "INSERT INTO retrieval_schema (version, dimension, hebrew_dictionary) "
                "VALUES (%s, %s, %s)",
                (SCHEMA_VERSION, dimension, hebrew),
            )
    return hebrew


def _configuration_exists(connection: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = connection.execute(
        "SELECT 1 FROM pg_ts_config WHERE cfgname = %s", (pg_search.CONFIGURATION,)
    ).fetchone()
    return row is not None


def _existing_schema(
    connection: psycopg.Connection[tuple[object, ...]], dimension: int
) -> bool | None:
    """Return whether a complete schema uses the Hebrew dictionary, None if absent."""
    exists = connection.execute(
        "SELECT to_regclass('retrieval_schema') IS NOT NULL"
    ).fetchone()
    if not exists or not exists[0]:
        return None
    row = connection.execute(
        "SELECT version, dimension FROM retrieval_schema"
    ).fetchone()
    if row is None:
        return None
    version, stored_dimension = int(str(row[0])), int(str(row[1]))
    if version != SCHEMA_VERSION:
        raise SchemaError(
            f"The retrieval tables have schema version {version}, this version "
            f"of torah-study uses {SCHEMA_VERSION}: drop the retrieval_* tables "
            "and ingest again."
        )
    if stored_dimension != dimension:
        raise SchemaError(
            f"The retrieval tables store {stored_dimension}-dimensional vectors, "
            f"but the embedding provider makes {dimension}-dimensional ones: "
            "drop the retrieval_* tables and ingest again, or switch back to the "
            "provider the library was ingested with."
        )
    return pg_search.has_hebrew_dictionary(connection)


def create_vector_index(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    """Build the HNSW index on the vectors unless it exists.

    Built once after the first ingestion, because bulk loading into an
    HNSW index is slower than building it; later writes maintain it.
    """
    connection.execute(
        f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON retrieval_vectors "
        "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
    )
