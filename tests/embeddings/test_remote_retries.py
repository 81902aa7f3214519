"""Retries and rate limits of the remote providers, through their real clients.

The local servers of fake_embedding_api.py speak the OpenAI and Gemini wire
formats and inject 429 with Retry-After, 5xx and stalled responses. Waits
between retries are recorded instead of slept.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fake_embedding_api import FakeEmbeddingServer

from torah_study.embeddings.base import EmbeddingError, Embeddings
from torah_study.embeddings.gemini import GeminiEmbeddings
from torah_study.embeddings.openai_compat import OpenAICompatibleEmbeddings
from torah_study.embeddings.retry import RateLimiter, RetryPolicy

Factory = Callable[..., Embeddings]


def openai_factory(server: FakeEmbeddingServer) -> Factory:
    def make(**kwargs: object) -> Embeddings:
        return OpenAICompatibleEmbeddings(
            f"{server.base_url}/v1",
            "emb-model",
            8,
            **kwargs,  # type: ignore[arg-type]
        )

    return make


def gemini_factory(server: FakeEmbeddingServer) -> Factory:
    def make(**kwargs: object) -> Embeddings:
        return GeminiEmbeddings(
            "test-key",
            dimension=8,
            base_url=server.base_url,
            **kwargs,  # type: ignore[arg-type]
        )

    return make


@pytest.fixture(params=["openai", "gemini"])
def provider(
    request: pytest.FixtureRequest,
    openai_embedding_server: FakeEmbeddingServer,
    gemini_embedding_server: FakeEmbeddingServer,
) -> tuple[FakeEmbeddingServer, Factory]:
    """Each provider with its local server."""
    if request.param == "openai":
        return openai_embedding_server, openai_factory(openai_embedding_server)
    return gemini_embedding_server, gemini_factory(gemini_embedding_server)


def test_retry_after_honoured(provider: tuple[FakeEmbeddingServer, Factory]) -> None:
    server, make = provider
    server.script.failures = [429]
    server.script.retry_after = "3"
    waits: list[float] = []
    embeddings = make(
        retry=RetryPolicy(max_attempts=3, base_delay=0.01), sleep=waits.append
    )

    vectors = embeddings.embed_passages(["Love your neighbour"])

    assert vectors.shape == (1, 8)
    assert len(server.requests) == 2
    assert waits == [3.0]


def test_server_errors_back_off(provider: tuple[FakeEmbeddingServer, Factory]) -> None:
    server, make = provider
    server.script.failures = [500, 503, 502]
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=60.0)
    embeddings = make(retry=policy, sleep=waits.append)

    embeddings.embed_passages(["a", "b"])

    assert len(server.requests) == 4
    assert len(waits) == 3
    # Full jitter: the n-th wait is drawn from [0, base * 2**n].
    for retry, wait in enumerate(waits):
        assert 0.0 <= wait <= 2.0**retry


def test_last_retry_raises_clearly(
    provider: tuple[FakeEmbeddingServer, Factory],
) -> None:
    server, make = provider
    server.script.failures = [503] * 5
    embeddings = make(retry=RetryPolicy(max_attempts=3), sleep=lambda _: None)

    with pytest.raises(EmbeddingError, match=r"failed after 3 attempts.*503"):
        embeddings.embed_passages(["a"])

    assert len(server.requests) == 3


def test_client_error_not_retried(
    provider: tuple[FakeEmbeddingServer, Factory],
) -> None:
    server, make = provider
    server.script.failures = [400]
    embeddings = make(retry=RetryPolicy(max_attempts=5), sleep=lambda _: None)

    with pytest.raises(EmbeddingError, match="after 1 attempt:"):
        embeddings.embed_passages(["a"])

    assert len(server.requests) == 1


def test_timeout_retried(provider: tuple[FakeEmbeddingServer, Factory]) -> None:
    server, make = provider
    server.script.stalls = [2.0]
    waits: list[float] = []
    embeddings = make(
        retry=RetryPolicy(max_attempts=3, base_delay=0.01),
        timeout_seconds=0.5,
        sleep=waits.append,
    )

    vectors = embeddings.embed_passages(["a"])

    assert vectors.shape == (1, 8)
    assert len(server.requests) == 2
    assert len(waits) == 1


def test_batches_keep_input_order(
    openai_embedding_server: FakeEmbeddingServer,
) -> None:
    texts = [f"text {i}" for i in range(7)]
    openai_embedding_server.script.failures = [429]
    embeddings = OpenAICompatibleEmbeddings(
        f"{openai_embedding_server.base_url}/v1",
        "emb-model",
        8,
        batch_size=3,
        retry=RetryPolicy(max_attempts=2, base_delay=0.01),
    )

    embeddings.embed_passages(texts)

    sent = [request.body["input"] for request in openai_embedding_server.requests]
    # The first batch is sent twice (429, then its retry), then the others.
    assert sent == [texts[0:3], texts[0:3], texts[3:6], texts[6:7]]


class FakeClock:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_requests_per_minute_paced() -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=60, clock=clock, sleep=clock.sleep)

    for _ in range(65):
        limiter.acquire(1)

    # A full bucket allows 60 at once; each further request waits one second.
    assert clock.now == pytest.approx(5.0)


def test_tokens_per_minute_paced() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tokens_per_minute=1000, clock=clock, sleep=clock.sleep)

    limiter.acquire(600)
    waited = limiter.acquire(600)

    # 400 tokens are left, so 200 more take 200 / 1000 of a minute.
    assert waited == pytest.approx(12.0)


def test_invalid_rate_limit_rejected() -> None:
    with pytest.raises(EmbeddingError, match="Invalid rate limit"):
        RateLimiter(requests_per_minute=-1)


def test_provider_uses_limiter(openai_embedding_server: FakeEmbeddingServer) -> None:
    clock = FakeClock()
    limiter = RateLimiter(requests_per_minute=2, clock=clock, sleep=clock.sleep)
    embeddings = OpenAICompatibleEmbeddings(
        f"{openai_embedding_server.base_url}/v1",
        "emb-model",
        8,
        batch_size=1,
        limiter=limiter,
    )

    embeddings.embed_passages(["a", "b", "c", "d"])

    assert len(openai_embedding_server.requests) == 4
    # Two requests fit the bucket; the third and fourth wait 30 s each.
    assert clock.now == pytest.approx(60.0)
