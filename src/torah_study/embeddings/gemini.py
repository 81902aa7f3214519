"""Embeddings from the Gemini API through the ``google-genai`` client."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from google.genai import types

from torah_study.answer.llm.gemini import classify_gemini_error, make_gemini_client
from torah_study.embeddings.base import EmbeddingError, Vectors, normalize_rows
from torah_study.embeddings.retry import (
    DEFAULT_RETRY,
    RateLimiter,
    RetryPolicy,
    call_with_retries,
    estimate_tokens,
)
from torah_study.providers.breaker import CircuitBreaker

DEFAULT_GEMINI_EMBEDDING_MODEL = "gemini-embedding-001"
DEFAULT_GEMINI_DIMENSION = 768

# NOTE: 100 texts per batchEmbedContents request is the commonly cited limit,
# not checked against Google's API reference.
MAX_BATCH_SIZE = 100


class GeminiEmbeddings:
    """Gemini embeddings with the retrieval task types for questions and passages.

    Google documents only the full 3072-dimension output of gemini-embedding-001 as
    normalised, so every output is normalised here.
    """

    def __init__(
        self,
        api_key: str,
        *,
        model: str = DEFAULT_GEMINI_EMBEDDING_MODEL,
        dimension: int = DEFAULT_GEMINI_DIMENSION,
        base_url: str | None = None,
        batch_size: int = MAX_BATCH_SIZE,
        retry: RetryPolicy = DEFAULT_RETRY,
        limiter: RateLimiter | None = None,
        timeout_seconds: float = 120.0,
        sleep: Callable[[float], None] | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        """Create the client. No request is sent before the first embed call.

        Retries follow ``retry`` (the client's own retries are off), and
        ``limiter`` paces the requests. ``sleep`` replaces ``time.sleep``
        between retries, for tests. ``breaker`` fails requests at once while
        the provider is down.
        """
        if not api_key:
            raise EmbeddingError(
                "Missing Gemini API key. Set TORAH_STUDY_GEMINI_API_KEY."
            )
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise EmbeddingError(
                f"Invalid batch_size {batch_size}: expected 1 to {MAX_BATCH_SIZE}."
            )
        self.name = f"gemini:{model}"
        self.dimension = dimension
        self._model = model
        self._batch_size = batch_size
        self._retry = retry
        self._limiter = limiter
        self._sleep = sleep or time.sleep
        self._breaker = breaker
        self._client = make_gemini_client(
            api_key, base_url=base_url, max_attempts=1, timeout_seconds=timeout_seconds
        )

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, "RETRIEVAL_QUERY")

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, "RETRIEVAL_DOCUMENT")

    def _embed(self, texts: Sequence[str], task_type: str) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        config = types.EmbedContentConfig(
            task_type=task_type, output_dimensionality=self.dimension
        )
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            rows.extend(self._embed_batch(batch, config))
        return normalize_rows(rows)

    def _embed_batch(
        self, batch: list[str], config: types.EmbedContentConfig
    ) -> list[list[float]]:
        if self._limiter is not None:
            self._limiter.acquire(estimate_tokens(batch))
        response = call_with_retries(
            lambda: self._client.models.embed_content(
                model=self._model, contents=batch, config=config
            ),
            classify_gemini_error,
            self._retry,
            operation=f"Gemini embedding model {self._model} on a batch of "
            f"{len(batch)} texts",
            sleep=self._sleep,
            breaker=self._breaker,
        )
        embeddings = response.embeddings or []
        if len(embeddings) != len(batch):
            raise EmbeddingError(
                f"Gemini embedding model {self._model} returned {len(embeddings)} "
                f"vectors for {len(batch)} texts."
            )
        rows = []
        for embedding in embeddings:
            values = embedding.values or []
            if len(values) != self.dimension:
                raise EmbeddingError(
                    f"Gemini embedding model {self._model} returned {len(values)} "
                    f"dimensions, expected {self.dimension}."
                )
            rows.append(values)
        return rows
