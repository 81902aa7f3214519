"""The retrieval store interface and the records it keeps."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

POSITION_WIDTH = 5


def position_key(position: Sequence[int]) -> str:
    """Return a sortable string for a position: (1, 12) → "00001.00012"."""
    return ".".join(f"{p:0{POSITION_WIDTH}d}" for p in position)


def position_upper_bound(position: Sequence[int]) -> str:
    """Return the first key after every segment under ``position`` (exclusive)."""
    if not position:
        return "~"
    return position_key((*position[:-1], position[-1] + 1))


class StoreError(RuntimeError):
    """Raised when the retrieval store cannot be opened with the settings given."""


@dataclass
class SegmentRecord:
    """One ref of the library with both languages and their sources."""

    ref: str
    book: str
    pos: str
    he: str = ""
    en: str = ""
    categories: list[str] = field(default_factory=list)
    he_version: str = ""
    en_version: str = ""
    he_license: str = ""
    en_license: str = ""
    digest: str = ""


@dataclass(frozen=True)
class Hit:
    ref: str
    score: float


@dataclass(frozen=True)
class Filters:
    """Restrict a search to books or categories (any match)."""

    books: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.books or self.categories)


@dataclass
class Candidate:
    """One ref as seen by the keyword and dense legs, before reranking."""

    ref: str
    rrf: float = 0.0
    keyword_rank: int | None = None
    keyword_score: float | None = None
    dense_rank: int | None = None
    dense_score: float | None = None


@dataclass(frozen=True)
class KeywordLeg:
    """A keyword search to fuse: ``store.keyword(query, k, filters)``."""

    name: str
    query: str
    k: int
    filters: Filters = Filters()


@dataclass(frozen=True)
class DenseLeg:
    """A dense search to fuse: ``store.dense(vector, k, filters)``."""

    name: str
    vector: npt.NDArray[np.float32]
    k: int
    filters: Filters = Filters()


Leg = KeywordLeg | DenseLeg


class SegmentStore(Protocol):
    """Keyword and dense search over segments, lookups by ref, and writing.

    Ingestion writes a book's segments with ``replace_book`` and its vectors
    with ``add_vectors``, then calls ``finish`` once to build the indexes.
    """

    def replace_book(
        self, book: str, records: Sequence[SegmentRecord], search: Sequence[str]
    ) -> None:
        """Replace every segment of ``book``; ``search`` is each keyword copy."""
        ...

    def delete_book(self, book: str) -> None: ...

    def vector_digests(self, book: str) -> dict[str, str]:
        """Return the text digest each stored vector of ``book`` was made from."""
        ...

    def add_vectors(
        self,
        records: Sequence[SegmentRecord],
        vectors: npt.NDArray[np.float32],
        digests: Sequence[str],
        *,
        replace: bool = True,
    ) -> None:
        """Store vectors; ``replace=False`` promises none of the refs has one."""
        ...

    def vector_refs(self) -> set[str]:
        """Return every ref that has a stored vector."""
        ...

    def delete_vectors(self, refs: Iterable[str]) -> None: ...

    def finish(self) -> None:
        """Build or refresh the indexes after writing."""
        ...

    def optimize_vectors(self) -> None:
        """Index vectors added since ``finish`` without disturbing readers."""
        ...

    def versions(self) -> dict[str, int]:
        """Return the version of each table this store reads (empty if live)."""
        ...

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...

    def keyword(self, query: str, k: int, filters: Filters = ...) -> list[Hit]: ...

    def dense(
        self, vector: npt.NDArray[np.float32], k: int, filters: Filters = ...
    ) -> list[Hit]: ...

    def get(self, refs: Sequence[str]) -> list[SegmentRecord]: ...

    def span(self, book: str, low: str, high: str, limit: int) -> list[SegmentRecord]:
        """Return segments with ``low <= pos < high`` in order."""
        ...

    def neighbours(
        self, record: SegmentRecord, before: int, after: int
    ) -> tuple[list[SegmentRecord], list[SegmentRecord]]: ...

    def vectors_for(self, refs: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """Return the stored vector of each ref that has one."""
        ...

    def bilingual(self) -> Iterator[tuple[str, str]]:
        """Yield the (Hebrew, English) texts of every segment that has both."""
        ...

    def count(self) -> int: ...

    def vector_count(self) -> int: ...

    def books(self) -> list[str]: ...


@runtime_checkable
class FusingStore(Protocol):
    """A store that runs several legs and fuses them by RRF in one query."""

    def fuse(self, legs: Sequence[Leg], k: int) -> list[Candidate]:
        """Return the same candidates as ``reciprocal_rank_fusion`` over the legs."""
        ...


def neighbour_window(record: SegmentRecord) -> tuple[str, str]:
    """Return the ``[low, high)`` positions of a record's section and the two beside it.

    A chapter, or a daf's amud, is the section. Neighbour lookups read only
    this window, so a lookup in a long tractate does not scan the whole book.
    """
    position = [int(part) for part in record.pos.split(".")]
    parent = position[:-1]
    if not parent:
        return "", "~"
    low = position_key([*parent[:-1], max(parent[-1] - 1, 0)])
    high = position_upper_bound([*parent[:-1], parent[-1] + 1])
    return low, high
