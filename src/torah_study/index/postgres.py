"""Server store: segments and vectors in PostgreSQL with pgvector.

Keyword search runs on a ``tsvector`` column under a GIN index, built with
the Hebrew and English text search configuration of ``pg_search``, and is
ranked by BM25 with the term statistics of ``pg_terms``. Dense
search runs on a pgvector HNSW index with cosine distance. ``fuse`` runs
several of these searches and their reciprocal rank fusion in one query.

Every write is one transaction, so readers in other threads or processes
see a book either as it was or as it is after the write, never half of it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool

from torah_study.index import pg_queries, pg_schema, pg_terms
from torah_study.index.base import (
    Candidate,
    DenseLeg,
    Filters,
    Hit,
    KeywordLeg,
    Leg,
    SegmentRecord,
    neighbour_window,
)

logger = logging.getLogger(__name__)

# Candidates the HNSW search keeps per query (pgvector's default is 40). A
# query asking for more rows than this raises it to the number asked for,
# up to pgvector's maximum of 1000.
DEFAULT_EF_SEARCH = 400
MAX_EF_SEARCH = 1000
_SELECT_RECORD = ", ".join(pg_schema.SEGMENT_COLUMNS)
_WRITE_BATCH = 500


class PostgresStore:
    """Segments and vectors in the ``retrieval_*`` tables of a PostgreSQL database."""

    def __init__(
        self,
        url: str,
        *,
        dimension: int = 384,
        pool_size: int = 10,
        ef_search: int = DEFAULT_EF_SEARCH,
        build_memory_mb: int = 1024,
        install_files: bool = True,
    ) -> None:
        """Connect, create the schema if needed, and open a connection pool.

        ``url`` is a libpq URL (``postgresql://…``). ``install_files`` lets the
        store copy the Hebrew dictionary into a server on this machine.
        ``build_memory_mb`` is the ``maintenance_work_mem`` of the HNSW build:
        the build is far slower once its graph outgrows it.
        """
        self.dimension = dimension
        self.ef_search = ef_search
        self.build_memory_mb = build_memory_mb
        with psycopg.connect(url) as connection:
            self.hebrew_dictionary = pg_schema.create_schema(
                connection, dimension, install_files=install_files
            )
        # Set by writes and cleared by ``finish``, which then recomputes the
        # term statistics.
        self._segments_changed = False
        self._terms_ready = False
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            configure=_configure,
            open=True,
            name="torah-study-retrieval",
        )

    def close(self) -> None:
        self._pool.close()

    # Writing ----------------------------------------------------------------

    def replace_book(
        self, book: str, records: Sequence[SegmentRecord], search: Sequence[str]
    ) -> None:
        """Replace every segment of ``book`` with ``records`` in one transaction."""
        if len(records) != len(search):
            raise ValueError(
                f"{book}: {len(records)} records but {len(search)} search texts"
            )
        columns = (*pg_schema.SEGMENT_COLUMNS, "search")
        with self._pool.connection() as connection, connection.transaction():
            connection.execute(
                "DELETE FROM retrieval_segments WHERE book = %s", (book,)
            )
            with connection.cursor().copy(
                f"COPY retrieval_segments ({', '.join(columns)}) FROM STDIN"
            ) as copy:
                copy.set_types(["text"] * 5 + ["text[]"] + ["text"] * 6)
                for record, text in zip(records, search, strict=True):
                    row = [getattr(record, name) for name in pg_schema.SEGMENT_COLUMNS]
                    copy.write_row([*row, text])
        self._segments_changed = True

    def delete_book(self, book: str) -> None:
        with self._pool.connection() as connection, connection.transaction():
            connection.execute(
                "DELETE FROM retrieval_segments WHERE book = %s", (book,)
            )
            connection.execute("DELETE FROM retrieval_vectors WHERE book = %s", (book,))
        self._segments_changed = True

    def vector_digests(self, book: str) -> dict[str, str]:
        rows = self._fetch(
            "SELECT ref, digest FROM retrieval_vectors WHERE book = %s", (book,)
        )
        return {str(ref): str(digest) for ref, digest in rows}

    def add_vectors(
        self,
        records: Sequence[SegmentRecord],
        vectors: npt.NDArray[np.float32],
        digests: Sequence[str],
        *,
        replace: bool = True,
    ) -> None:
        """Store vectors for ``records``, replacing older vectors of the same refs.

        ``replace`` changes nothing here: the insert replaces on conflict.
        """
        if not records:
            return
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.shape != (len(records), self.dimension):
            raise ValueError(
                f"Expected {len(records)} vectors of {self.dimension} numbers, "
                f"got an array of shape {matrix.shape}"
            )
        rows = [
            (r.ref, r.book, list(r.categories), digest, vector)
            for r, digest, vector in zip(records, digests, matrix, strict=True)
        ]
        with (
            self._pool.connection() as connection,
            connection.transaction(),
            connection.cursor() as cursor,
        ):
            cursor.executemany(
                """INSERT INTO retrieval_vectors
                    (ref, book, categories, digest, embedding)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (ref) DO UPDATE SET book = excluded.book,
                    categories = excluded.categories, digest = excluded.digest,
                    embedding = excluded.embedding""",
                rows,
            )

    def vector_refs(self) -> set[str]:
        """Return every ref that has a stored vector."""
        rows = self._fetch("SELECT ref FROM retrieval_vectors", ())
        return {str(row[0]) for row in rows}

    def delete_vectors(self, refs: Iterable[str]) -> None:
        batch = list(refs)
        with self._pool.connection() as connection, connection.transaction():
            for start in range(0, len(batch), _WRITE_BATCH):
                connection.execute(
                    "DELETE FROM retrieval_vectors WHERE ref = ANY(%s)",
                    (batch[start : start + _WRITE_BATCH],),
                )

    def finish(self) -> None:
        """Build the HNSW index if missing and refresh term and planner statistics.

        The index is built only once vectors exist: building it over loaded
        rows is much faster than inserting millions of rows into it. Term
        statistics are recomputed when this store wrote segments or none
        exist yet.
        """
        with self._pool.connection() as connection:
            with connection.transaction():
                stale = self._segments_changed or not self._has_terms(connection)
            if stale:
                started = time.perf_counter()
                lexemes = pg_terms.refresh(connection)
                self._segments_changed = False
                logger.info(
                    "Counted the segments of %d lexemes in %.1f s",
                    lexemes,
                    time.perf_counter() - started,
                )
            if self._count("retrieval_vectors"):
                with connection.transaction():
                    connection.execute(
                        "SELECT set_config('maintenance_work_mem', %s, true)",
                        (f"{self.build_memory_mb}MB",),
                    )
                    pg_schema.create_vector_index(connection)
            connection.autocommit = True
            try:
                connection.execute("ANALYZE retrieval_segments")
                connection.execute("ANALYZE retrieval_vectors")
            finally:
                connection.autocommit = False

    def optimize_vectors(self) -> None:
        """Build the HNSW index when vectors exist and it does not."""
        self.finish()

    def versions(self) -> dict[str, int]:
        """PostgreSQL readers always see committed rows: nothing to reopen."""
        return {}

    # Searching --------------------------------------------------------------

    def keyword(self, query: str, k: int, filters: Filters = Filters()) -> list[Hit]:
        """Segments that contain any word of ``query``, ranked by BM25.

        Before the first ``finish`` there are no term statistics, and
        segments are ranked by ``ts_rank``.
        """
        if not query.strip():
            return []
        leg = KeywordLeg("keyword", query, k, filters)
        with self._pool.connection() as connection:
            terms = self._leg_terms(connection, [leg])
            sql, params = pg_queries.keyword_query(leg, terms=terms.get(0))
            rows = connection.execute(
                f"SELECT ref, score FROM ({sql}) AS hits ORDER BY rank", params
            ).fetchall()
        return [Hit(str(ref), float(score)) for ref, score in rows]

    def dense(
        self, vector: npt.NDArray[np.float32], k: int, filters: Filters = Filters()
    ) -> list[Hit]:
        """Nearest vectors by cosine distance; the score is the cosine."""
        leg = DenseLeg("dense", vector, k, filters)
        sql, params = pg_queries.dense_query(leg)
        with self._pool.connection() as connection, connection.transaction():
            tune_ann_search(connection, self.ef_search, k)
            rows = connection.execute(
                f"SELECT ref, score FROM ({sql}) AS hits ORDER BY rank", params
            ).fetchall()
        return [Hit(str(ref), float(score)) for ref, score in rows]

    def fuse(self, legs: Sequence[Leg], k: int) -> list[Candidate]:
        """Run the legs and fuse them by reciprocal rank fusion in one query."""
        live = [
            leg for leg in legs if not isinstance(leg, KeywordLeg) or leg.query.strip()
        ]
        if not live:
            return []
        dense_k = max((leg.k for leg in live if isinstance(leg, DenseLeg)), default=0)
        with self._pool.connection() as connection, connection.transaction():
            terms = self._leg_terms(connection, live)
            sql, params = pg_queries.fusion_query(live, k, terms)
            tune_ann_search(connection, self.ef_search, dense_k)
            rows = connection.execute(sql, params).fetchall()
        # The last column (first_seen) only orders the rows.
        return [Candidate(str(row[0]), float(row[1]), *row[2:6]) for row in rows]

    def vectors_for(self, refs: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        if not refs:
            return {}
        rows = self._fetch(
            "SELECT ref, embedding FROM retrieval_vectors WHERE ref = ANY(%s)",
            (list(refs),),
        )
        # pgvector's loader returns ``Vector`` objects.
        return {
            str(ref): np.asarray(vector.to_numpy(), dtype=np.float32)
            for ref, vector in rows
        }

    def get(self, refs: Sequence[str]) -> list[SegmentRecord]:
        """Return records for ``refs`` in the order given; unknown refs are skipped."""
        if not refs:
            return []
        rows = self._fetch(
            f"SELECT {_SELECT_RECORD} FROM retrieval_segments WHERE ref = ANY(%s)",
            (list(refs),),
        )
        by_ref = {record.ref: record for record in map(_record, rows)}
        return [by_ref[r] for r in refs if r in by_ref]

    def span(self, book: str, low: str, high: str, limit: int) -> list[SegmentRecord]:
        """Return up to ``limit`` segments with ``low <= pos < high``, in order."""
        rows = self._fetch(
            f"""SELECT {_SELECT_RECORD} FROM retrieval_segments
            WHERE book = %s AND pos >= %s AND pos < %s ORDER BY pos LIMIT %s""",
            (book, low, high, limit),
        )
        return [_record(row) for row in rows]

    def neighbours(
        self, record: SegmentRecord, before: int, after: int
    ) -> tuple[list[SegmentRecord], list[SegmentRecord]]:
        """Return up to ``before`` and ``after`` segments around ``record``.

        Only the record's own section and the sections on either side are
        searched, as in the LanceDB store, so both stores return the same.
        """
        low, high = neighbour_window(record)
        earlier = self._fetch(
            f"""SELECT {_SELECT_RECORD} FROM retrieval_segments
            WHERE book = %s AND pos >= %s AND pos < %s ORDER BY pos DESC LIMIT %s""",
            (record.book, low, record.pos, before),
        )
        later = self._fetch(
            f"""SELECT {_SELECT_RECORD} FROM retrieval_segments
            WHERE book = %s AND pos > %s AND pos < %s ORDER BY pos LIMIT %s""",
            (record.book, record.pos, high, after),
        )
        return [_record(row) for row in reversed(earlier)], [_record(r) for r in later]

    def bilingual(self) -> Iterator[tuple[str, str]]:
        """Yield the (Hebrew, English) texts of every segment that has both."""
        with self._pool.connection() as connection:
            cursor_name = f"bilingual_{uuid.uuid4().hex[:8]}"
            with (
                connection.transaction(),
                connection.cursor(name=cursor_name) as cursor,
            ):
                cursor.itersize = 2000
                cursor.execute(
                    "SELECT he, en FROM retrieval_segments WHERE he <> '' AND en <> ''"
                )
                for he, en in cursor:
                    yield str(he), str(en)

    def count(self) -> int:
        return self._count("retrieval_segments")

    def vector_count(self) -> int:
        return self._count("retrieval_vectors")

    def books(self) -> list[str]:
        rows = self._fetch(
            "SELECT book FROM retrieval_segments GROUP BY book "
            'ORDER BY book COLLATE "C"',
            (),
        )
        return [str(row[0]) for row in rows]

    # Helpers ----------------------------------------------------------------

    def _fetch(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        with self._pool.connection() as connection:
            return connection.execute(sql, params).fetchall()

    def _has_terms(self, connection: psycopg.Connection[Any]) -> bool:
        """Tell whether the term statistics tables exist (kept once true)."""
        if not self._terms_ready:
            self._terms_ready = pg_terms.tables_exist(connection)
        return self._terms_ready

    def _leg_terms(
        self, connection: psycopg.Connection[Any], legs: Sequence[Leg]
    ) -> dict[int, pg_queries.LegTerms]:
        """Return the term statistics of each keyword leg, by its index in ``legs``.

        Empty until the first ``finish``: the legs are then ranked by ``ts_rank``.
        """
        keyword = {i: leg for i, leg in enumerate(legs) if isinstance(leg, KeywordLeg)}
        if not keyword or not self._has_terms(connection):
            return {}
        totals, terms = pg_terms.lookup(
            connection, [leg.query for leg in keyword.values()]
        )
        if totals is None:
            return {}
        return {
            index: (totals, found) for index, found in zip(keyword, terms, strict=True)
        }

    def _count(self, table: str) -> int:
        row = self._fetch(f"SELECT count(*) FROM {table}", ())[0]
        return int(row[0])


def tune_ann_search(
    connection: psycopg.Connection[Any], ef_search: int, k: int
) -> None:
    """Set the HNSW search options for the current transaction.

    ``hnsw.ef_search`` becomes the larger of ``ef_search`` and ``k``, up to
    pgvector's maximum. With ``relaxed_order`` iterative scans, pgvector
    keeps searching the graph until it has ``k`` rows that pass the filters
    (or has read ``hnsw.max_scan_tuples``), so a filtered query returns k rows.
    """
    candidates = min(max(ef_search, k), MAX_EF_SEARCH)
    connection.execute(
        "SELECT set_config('hnsw.ef_search', %s, true), "
        "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
        (str(candidates),),
    )


def _configure(connection: psycopg.Connection[Any]) -> None:
    register_vector(connection)
    connection.commit()


def _record(row: Sequence[Any]) -> SegmentRecord:
    values = dict(zip(pg_schema.SEGMENT_COLUMNS, row, strict=True))
    categories = list(values.pop("categories") or [])
    return SegmentRecord(
        categories=categories, **{k: v or "" for k, v in values.items()}
    )
