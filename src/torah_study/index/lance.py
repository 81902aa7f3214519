"""Embedded default store: LanceDB tables on local disk, no server needed.

``segments`` contains every ref with its text and a normalised ``search`` column
under a BM25 full-text index. ``vectors`` contains dense vectors for the refs in
the configured dense scope, so keyword search covers everything while the
slow embedding stage can cover less.

One process writes (an ingest, under the data folder's write lock) while any
number of serving processes read. Every write commits a new table version,
and a reader keeps using the version it opened until it calls ``refresh``.
``finish`` deletes a replaced version only once it has been replaced for
longer than ``keep_versions``, so a reader that refreshes more often than
that never reads a version whose files are gone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from lancedb.index import FTS, BTree

from torah_study.index.base import (
    Filters,
    Hit,
    SegmentRecord,
    position_key,
    position_upper_bound,
)

logger = logging.getLogger(__name__)

SEGMENTS = "segments"
VECTORS = "vectors"
# Below this many vectors an exhaustive scan takes a few milliseconds and is
# exact, so an approximate IVF-PQ index is only trained for larger scopes.
VECTOR_INDEX_MIN_ROWS = 100_000
# Measured on 3.5 million vectors: dense recall@10 0.80 against an exact
# scan, where LanceDB's defaults (20 partitions, no refinement) gave 0.33.
DEFAULT_NPROBES = 100
DEFAULT_REFINE_FACTOR = 10
DEFAULT_KEEP_VERSIONS = timedelta(minutes=10)
# A cleanup age no table version reaches, for an optimize() that only compacts
# (None would mean LanceDB's default of 7 days).
_KEEP_ALL = timedelta(days=365_000)
# Time between cleanup_age reading the clock and LanceDB reading it.
_CLOCK_MARGIN = timedelta(seconds=1)

_TEXT_COLUMNS = (
    "ref", "book", "pos", "he", "en", "categories",
    "he_version", "en_version", "he_license", "en_license", "digest",
)  # fmt: skip


def _segment_schema() -> pa.Schema:
    fields = [pa.field(name, pa.string()) for name in _TEXT_COLUMNS]
    return pa.schema([*fields, pa.field("search", pa.string())])


def _vector_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("ref", pa.string()),
            pa.field("book", pa.string()),
            pa.field("categories", pa.string()),
            pa.field("digest", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dimension)),
        ]
    )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _categories_cell(categories: Sequence[str]) -> str:
    # Bars on both ends let a filter match whole names with LIKE '%|Torah|%'.
    return "|" + "|".join(categories) + "|"


def filter_sql(filters: Filters) -> str | None:
    """Translate filters into a LanceDB SQL predicate (books OR categories)."""
    clauses: list[str] = []
    if filters.books:
        clauses.append(f"book IN ({', '.join(_quote(b) for b in filters.books)})")
    for category in filters.categories:
        clauses.append(f"categories LIKE {_quote('%|' + category + '|%')}")
    return " OR ".join(f"({c})" for c in clauses) if clauses else None


class LanceStore:
    """Segments and vectors in a LanceDB folder.

    ``keep_versions`` is how long ``finish`` keeps a table version after a
    newer one replaced it. It must be longer than the interval at which
    readers call ``refresh`` plus the longest query, or a reader may find the
    files of its version deleted.
    """

    def __init__(
        self,
        path: Path,
        *,
        dimension: int = 384,
        keep_versions: timedelta = DEFAULT_KEEP_VERSIONS,
        nprobes: int = DEFAULT_NPROBES,
        refine_factor: int = DEFAULT_REFINE_FACTOR,
    ) -> None:
        """Open or create the tables in ``path``.

        ``nprobes`` and ``refine_factor`` tune dense queries once the vector
        index exists: the IVF partitions read, and the multiple of k that is
        read from the compressed index and ranked again by exact distance.
        """
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.dimension = dimension
        self.keep_versions = keep_versions
        self.nprobes = nprobes
        self.refine_factor = refine_factor
        # No read_consistency_interval: a table moves to a newer version only
        # in refresh(), so a serving process can refresh the index and then
        # reload the catalog, in that order (see service.LibraryRefresher).
        self._db = lancedb.connect(str(path))
        self._segments: Any = self._open(SEGMENTS, _segment_schema())
        self._vectors: Any = self._open(VECTORS, _vector_schema(dimension))

    def _open(self, name: str, schema: pa.Schema) -> Any:
        if name in self._db.list_tables().tables:
            return self._db.open_table(name)
        # exist_ok: another process may create the table at the same moment.
        return self._db.create_table(name, schema=schema, exist_ok=True)

    def refresh(self) -> None:
        """Move both tables to their newest committed version.

        Queries already running keep the version they started on.
        """
        self._segments.checkout_latest()
        self._vectors.checkout_latest()

    def close(self) -> None:
        """Nothing to release: LanceDB holds no connection."""

    def versions(self) -> dict[str, int]:
        """Return the table version this store reads, by table name."""
        return {
            SEGMENTS: int(self._segments.version),
            VECTORS: int(self._vectors.version),
        }

    # Writing ----------------------------------------------------------------

    def replace_book(
        self, book: str, records: Sequence[SegmentRecord], search: Sequence[str]
    ) -> None:
        """Replace every segment of ``book`` with ``records`` in one commit.

        A reader sees the book either before or after the change, never
        without rows: a new book is one append, and a stored one is rewritten
        by a single merge that updates, inserts and deletes its rows.
        """
        where = f"book = {_quote(book)}"
        stored = self._segments.count_rows(where)
        if not records:
            if stored:
                self._segments.delete(where)
            return
        columns: dict[str, list[str]] = {name: [] for name in _TEXT_COLUMNS}
        for record in records:
            for name in _TEXT_COLUMNS:
                value = getattr(record, name)
                if name == "categories":
                    value = _categories_cell(value)
                columns[name].append(value)
        table = pa.table({**columns, "search": list(search)}, schema=_segment_schema())
        if not stored:
            self._segments.add(table)
            return
        (
            self._segments.merge_insert("ref")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(where)
            .execute(table)
        )

    def delete_book(self, book: str) -> None:
        self._segments.delete(f"book = {_quote(book)}")
        self._vectors.delete(f"book = {_quote(book)}")

    def vector_digests(self, book: str) -> dict[str, str]:
        rows = (
            self._vectors.search()
            .where(f"book = {_quote(book)}")
            .select(["ref", "digest"])
            .limit(None)
            .to_arrow()
        )
        return dict(
            zip(rows["ref"].to_pylist(), rows["digest"].to_pylist(), strict=True)
        )

    def add_vectors(
        self,
        records: Sequence[SegmentRecord],
        vectors: npt.NDArray[np.float32],
        digests: Sequence[str],
        *,
        replace: bool = True,
    ) -> None:
        """Store vectors for ``records``, replacing older vectors of the same refs.

        With ``replace`` off the caller knows that none of the refs has a
        stored vector, and the delete, which scans the table, is skipped.
        """
        if not records:
            return
        refs = [r.ref for r in records]
        # NOTE: two commits, so a reader that refreshes between them misses
        # these refs in dense search until the next refresh. A merge would
        # avoid that but reads the whole table for each batch.
        if replace:
            self._vectors.delete(f"ref IN ({', '.join(_quote(r) for r in refs)})")
        table = pa.table(
            {
                "ref": refs,
                "book": [r.book for r in records],
                "categories": [_categories_cell(r.categories) for r in records],
                "digest": list(digests),
                "vector": list(np.asarray(vectors, dtype=np.float32)),
            },
            schema=_vector_schema(self.dimension),
        )
        self._vectors.add(table)

    def vector_refs(self) -> set[str]:
        """Return every ref that has a stored vector."""
        rows = self._vectors.search().select(["ref"]).limit(None).to_arrow()
        return set(rows["ref"].to_pylist())

    def delete_vectors(self, refs: Iterable[str]) -> None:
        batch = list(refs)
        for start in range(0, len(batch), 500):
            chunk = batch[start : start + 500]
            self._vectors.delete(f"ref IN ({', '.join(_quote(r) for r in chunk)})")

    def finish(self) -> None:
        """Compact fragments, drop long-replaced versions and rebuild the indexes.

        Each index is rebuilt with ``replace=True``, which commits the new
        index in a new table version: a reader sees either the old index or
        the new one, and the old index files stay on disk with the version
        that uses them.
        """
        for table in (self._segments, self._vectors):
            table.optimize(cleanup_older_than=_KEEP_ALL)
        if self._segments.count_rows():
            self._segments.create_index(
                "search",
                config=FTS(
                    base_tokenizer="simple",
                    language="English",
                    stem=True,
                    remove_stop_words=True,
                    ascii_folding=True,
                    with_position=False,
                ),
                replace=True,
            )
            for column in ("ref", "book", "pos"):
                self._segments.create_index(column, config=BTree(), replace=True)
        self._index_vectors(rebuild=True)
        # Ingestion rewrites whole books, so old versions keep the replaced
        # rows on disk until they are removed here. The slow compaction ran
        # above, so this optimize() reaches its cleanup within milliseconds of
        # cleanup_age reading the clock (_CLOCK_MARGIN allows a second).
        for table in (self._segments, self._vectors):
            table.optimize(cleanup_older_than=cleanup_age(table, self.keep_versions))

    def optimize_vectors(self) -> None:
        """Compact the vectors table and add its new rows to the existing indexes.

        Unlike ``finish`` this keeps old table versions (LanceDB's default
        retention), so a service reading the store meanwhile keeps working.
        Indexes that do not exist yet (the approximate index once the table
        reaches VECTOR_INDEX_MIN_ROWS) are built.
        """
        self._vectors.optimize()
        self._index_vectors(rebuild=False)

    def _index_vectors(self, *, rebuild: bool) -> None:
        vectors = self._vectors.count_rows()
        indexed = {tuple(i.columns) for i in self._vectors.list_indices()}
        if vectors and (rebuild or ("ref",) not in indexed):
            self._vectors.create_index("ref", config=BTree(), replace=True)
        if vectors >= VECTOR_INDEX_MIN_ROWS and (rebuild or ("vector",) not in indexed):
            self._vectors.create_index(
                metric="cosine",
                vector_column_name="vector",
                index_type="IVF_PQ",
                num_sub_vectors=self.dimension // 8,
                replace=True,
            )

    # Searching --------------------------------------------------------------

    def keyword(self, query: str, k: int, filters: Filters = Filters()) -> list[Hit]:
        """BM25 over the normalised ``search`` column."""
        if not query.strip():
            return []
        search = self._segments.search(query, query_type="fts", fts_columns="search")
        where = filter_sql(filters)
        if where:
            search = search.where(where, prefilter=True)
        rows = search.select(["ref", "_score"]).limit(k).to_list()
        return [Hit(row["ref"], float(row["_score"])) for row in rows]

    def dense(
        self, vector: npt.NDArray[np.float32], k: int, filters: Filters = Filters()
    ) -> list[Hit]:
        """Cosine similarity over the vectors table; the score is the cosine."""
        if not self._vectors.count_rows():
            return []
        search = self._vectors.search(
            np.asarray(vector, dtype=np.float32), vector_column_name="vector"
        ).distance_type("cosine")
        search = search.nprobes(self.nprobes)
        if self.refine_factor > 1:
            search = search.refine_factor(self.refine_factor)
        where = filter_sql(filters)
        if where:
            search = search.where(where, prefilter=True)
        rows = search.select(["ref", "_distance"]).limit(k).to_list()
        return [Hit(row["ref"], 1.0 - float(row["_distance"])) for row in rows]

    def vectors_for(self, refs: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        if not refs:
            return {}
        rows = (
            self._vectors.search()
            .where(f"ref IN ({', '.join(_quote(r) for r in refs)})")
            .select(["ref", "vector"])
            .limit(len(refs))
            .to_list()
        )
        return {row["ref"]: np.asarray(row["vector"], dtype=np.float32) for row in rows}

    def get(self, refs: Sequence[str]) -> list[SegmentRecord]:
        """Return records for ``refs`` in the order given; unknown refs are skipped."""
        if not refs:
            return []
        rows = self._query(f"ref IN ({', '.join(_quote(r) for r in refs)})", len(refs))
        by_ref = {row.ref: row for row in rows}
        return [by_ref[r] for r in refs if r in by_ref]

    def span(self, book: str, low: str, high: str, limit: int) -> list[SegmentRecord]:
        where = (
            f"book = {_quote(book)} AND pos >= {_quote(low)} AND pos < {_quote(high)}"
        )
        rows = self._query(where, limit)
        return sorted(rows, key=lambda r: r.pos)

    def neighbours(
        self, record: SegmentRecord, before: int, after: int
    ) -> tuple[list[SegmentRecord], list[SegmentRecord]]:
        """Return up to ``before`` and ``after`` segments around ``record``.

        Only the record's own section and the sections on either side are
        read (a chapter, or a daf's amud), so a lookup in a long tractate does
        not scan the whole book. Neighbours further away are not returned.
        """
        position = [int(part) for part in record.pos.split(".")]
        parent = position[:-1]
        if parent:
            low = position_key([*parent[:-1], max(parent[-1] - 1, 0)])
            high = position_upper_bound([*parent[:-1], parent[-1] + 1])
        else:
            low, high = "", "~"
        book = _quote(record.book)
        window = self._query(
            f"book = {book} AND pos >= {_quote(low)} AND pos < {_quote(high)}", None
        )
        window.sort(key=lambda r: r.pos)
        earlier = [r for r in window if r.pos < record.pos]
        later = [r for r in window if r.pos > record.pos]
        return (earlier[-before:] if before else []), later[:after]

    def bilingual(self) -> Iterator[tuple[str, str]]:
        """Yield the (Hebrew, English) texts of every segment that has both."""
        scan = (
            self._segments.search()
            .where("he != '' AND en != ''")
            .select(["he", "en"])
            .limit(None)
        )
        for batch in scan.to_batches():
            yield from zip(
                batch.column("he").to_pylist(),
                batch.column("en").to_pylist(),
                strict=True,
            )

    def count(self) -> int:
        return int(self._segments.count_rows())

    def vector_count(self) -> int:
        return int(self._vectors.count_rows())

    def books(self) -> list[str]:
        rows = self._segments.search().select(["book"]).limit(None).to_arrow()
        return sorted(set(rows["book"].to_pylist()))

    def _query(self, where: str, limit: int | None) -> list[SegmentRecord]:
        columns = list(_TEXT_COLUMNS)
        rows = (
            self._segments.search().where(where).select(columns).limit(limit).to_list()
        )
        return [_record(row) for row in rows]


def cleanup_age(table: Any, keep: timedelta) -> timedelta:
    """Return the ``cleanup_older_than`` that removes only long-replaced versions.

    LanceDB removes every version whose own commit time is older than the
    given age, except the latest (LanceDB 0.40 ``optimize`` documentation).
    A reader, however, may use a version until some time after the next
    version replaced it, however old the version itself is. So a version is
    removed only when its successor was committed more than ``keep`` ago: the
    age returned is that of the newest version committed before ``now -
    keep``, which removes the versions before it and keeps it and all later
    ones.
    """
    now = datetime.now()
    # list_versions gives local naive datetimes (datetime.fromtimestamp).
    stamps: list[datetime] = sorted(v["timestamp"] for v in table.list_versions())
    settled = [stamp for stamp in stamps if stamp <= now - keep]
    if not settled:
        return _KEEP_ALL
    # The margin moves the cut earlier, so a clock read later by LanceDB
    # cannot move it past the version to keep.
    return now - settled[-1] + _CLOCK_MARGIN


def _record(row: dict[str, Any]) -> SegmentRecord:
    values = {name: row.get(name) or "" for name in _TEXT_COLUMNS}
    categories = [c for c in str(values.pop("categories")).split("|") if c]
    return SegmentRecord(categories=categories, **values)
