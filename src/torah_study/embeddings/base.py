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
    """L2-normalise each row so that a dot product is the cosine."""
    array = np.asarray(matrix, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalized: Vectors = (array / norms).astype(np.float32)
    return normalized
