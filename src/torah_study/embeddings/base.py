"""The interface every embedding provider implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class EmbeddingError(RuntimeError):
    """Raised when an embedding provider cannot be loaded or fails on a batch."""


class Embeddings(Protocol):
    """Maps questions and passages into one vector space (L2-normalised rows)."""

    name: str
    dimension: int

    def embed_queries(self, texts: Sequence[str]) -> Vectors: ...

    def embed_passages(self, texts: Sequence[str]) -> Vectors: ...


def normalize_rows(matrix: npt.ArrayLike) -> Vectors:
    """L2-normalise each row so that a dot product is the cosine.

    Each row is first divided by its largest magnitude, in float64, so rows
    of huge (1e30) or tiny (1e-45) numbers neither overflow nor underflow.
    Zero rows stay zero; rows with NaN or infinities stay non-finite, for
    ``unusable_rows`` to find.
    """
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    with np.errstate(invalid="ignore", over="ignore"):
        scale = np.max(np.abs(array), axis=1, keepdims=True)
        scale[(scale == 0) | ~np.isfinite(scale)] = 1.0
        scaled = array / scale
        norms = np.linalg.norm(scaled, axis=1, keepdims=True)
    norms[(norms == 0) | ~np.isfinite(norms)] = 1.0
    normalized: Vectors = (scaled / norms).astype(np.float32)
    return normalized


def unusable_rows(matrix: npt.NDArray[np.floating]) -> list[int]:
    """Return the indices of rows that are zero or hold NaN or infinities."""
    finite = np.isfinite(matrix).all(axis=1)
    nonzero = np.any(matrix != 0, axis=1)
    return [int(i) for i in np.flatnonzero(~(finite & nonzero))]
