"""The retrieval store interface and the records it keeps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

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


class SegmentStore(Protocol):
    """Keyword and dense search over segments plus lookups by ref."""

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

    def count(self) -> int: ...

    def vector_count(self) -> int: ...
