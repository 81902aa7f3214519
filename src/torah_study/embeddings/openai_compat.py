"""Embeddings from any server that speaks the OpenAI embeddings API.

This covers OpenAI itself and self-hosted servers such as vLLM, llama.cpp's
``llama-server``, Ollama and text-embeddings-inference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import openai

from torah_study.answer.llm.openai_compat import (
    classify_openai_error,
    make_openai_client,
)
from torah_study.embeddings.base import EmbeddingError, Vectors, normalize_rows
from torah_study.embeddings.retry import (
    DEFAULT_RETRY,
    RateLimiter,
    RetryPolicy,
    call_with_retries,
    estimate_tokens,
)
from torah_study.providers.breaker import CircuitBreaker

DEFAULT_BATCH_SIZE = 64


class OpenAICompatibleEmbeddings:
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint.

    The API has no separate query and passage modes. Models trained with
    instruction prefixes (E5 expects "query: " and "passage: ") get them through
    ``query_prefix`` and ``passage_prefix``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        dimension: int,
        api_key: str | None = None,
        *,
        query_prefix: str = "",
        passage_prefix: str = "",
        request_dimensions: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        retry: RetryPolicy = DEFAULT_RETRY,
        limiter: RateLimiter | None = None,
        timeout_seconds: float = 120.0,
        sleep: Callable[[float], None] | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        """Create the client. No request is sent before the first embed call.

        ``dimension`` must match the model's output. With ``request_dimensions``
        the ``dimensions`` parameter is sent, which OpenAI's text-embedding-3
        models use to shorten vectors, but many other servers reject it.
        Retries follow ``retry`` (the client's own retries are off), and
        ``limiter`` paces the requests. ``sleep`` replaces ``time.sleep``
        between retries, for tests. ``breaker`` fails requests at once while
        the provider is down.
        """
        if not base_url:
            raise EmbeddingError(
                "Missing OpenAI-compatible base URL. Set TORAH_STUDY_OPENAI_BASE_URL."
            )
        if not model:
            raise EmbeddingError(
                "Missing embedding model name. Set TORAH_STUDY_EMBEDDING_MODEL."
            )
        if dimension < 1:
            raise EmbeddingError(f"Invalid dimension {dimension}: expected 1 or more.")
        if batch_size < 1:
            raise EmbeddingError(
                f"Invalid batch_size {batch_size}: expected 1 or more."
            )
        self.name = f"openai:{model}"
        self.dimension = dimension
        self._model = model
        self._query_prefix = query_prefix
        self._passage_prefix = passage_prefix
        self._request_dimensions = request_dimensions
        self._batch_size = batch_size
        self._retry = retry
        self._limiter = limiter
        self._sleep = sleep or time.sleep
        self._breaker = breaker
        self._client = make_openai_client(
            base_url, api_key, max_retries=0, timeout_seconds=timeout_seconds
        )

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        return self._embed([self._query_prefix + text for text in texts])

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self._embed([self._passage_prefix + text for text in texts])

    def _embed(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            rows.extend(self._embed_batch(texts[start : start + self._batch_size]))
        return normalize_rows(rows)

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        if self._limiter is not None:
            self._limiter.acquire(estimate_tokens(batch))
        operation = f"Embedding model {self._model} on a batch of {len(batch)} texts"
        try:
            response = call_with_retries(
                lambda: self._request(batch),
                classify_openai_error,
                self._retry,
                operation=operation,
                sleep=self._sleep,
            )
        except ValueError as error:
            # The client raises ValueError for a response without data.
            raise EmbeddingError(
                f"Embedding model {self._model} returned an invalid response: {error}"
            ) from error
        if len(response.data) != len(batch):
            raise EmbeddingError(
                f"Embedding model {self._model} returned {len(response.data)} "
                f"vectors for {len(batch)} texts."
            )
        # Each item carries the position of its input, so rows are ordered by it
        # rather than by the order of the list.
        ordered = sorted(response.data, key=lambda item: item.index)
        rows = []
        for item in ordered:
            if len(item.embedding) != self.dimension:
                raise EmbeddingError(
                    f"Embedding model {self._model} returned {len(item.embedding)} "
                    f"dimensions, expected {self.dimension}. Set the dimension to "
                    "match the model."
                )
            rows.append(item.embedding)
        return rows

    def _request(self, batch: list[str]) -> openai.types.CreateEmbeddingResponse:
        if self._request_dimensions:
            return self._client.embeddings.create(
                model=self._model, input=batch, dimensions=self.dimension
            )
        return self._client.embeddings.create(model=self._model, input=batch)
