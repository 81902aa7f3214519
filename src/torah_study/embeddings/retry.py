"""Client-side rate limiting and retries for remote providers.

The embedding, answer and rerank providers turn off the retries of their
client libraries and call ``call_with_retries`` instead, so that every
provider waits the same way: exponential backoff with full jitter, at least
as long as a ``Retry-After`` header requests (up to a cap), and one clear
error after the last attempt. With a circuit breaker, every attempt counts
towards it, and an open breaker stops the attempts at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, TypeVar

from torah_study.embeddings.base import EmbeddingError
from torah_study.providers.breaker import CircuitBreaker, CircuitOpenError

if TYPE_CHECKING:
    from torah_study.config import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The longest wait honoured from a Retry-After header by default: a server
# that requests more is treated as failing rather than blocking an embedding
# run for hours.
MAX_RETRY_AFTER_SECONDS = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failed request.

    The n-th retry waits a random time between 0 and
    ``min(max_delay, base_delay * 2**n)`` seconds (full jitter), or the
    server's ``Retry-After`` when that is longer. A ``Retry-After`` above
    ``max_retry_after`` seconds ends the attempts at once.
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS

    def backoff(self, retry: int, retry_after: float | None) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2**retry)
        delay = random.uniform(0.0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


DEFAULT_RETRY = RetryPolicy()


# Retries of requests made while a learner waits for an answer: at most
# three attempts, up to 0.5 s and 1 s apart, and a Retry-After of at most 10 s.
QUESTION_RETRY = RetryPolicy(
    max_attempts=3, base_delay=0.5, max_delay=4.0, max_retry_after=10.0
)


def question_retry(settings: Settings) -> RetryPolicy:
    """Return QUESTION_RETRY with the attempts and Retry-After cap of ``settings``."""
    return replace(
        QUESTION_RETRY,
        max_attempts=settings.provider_max_attempts,
        max_retry_after=settings.provider_max_retry_after_seconds,
    )


@dataclass(frozen=True)
class Failure:
    """A provider's verdict on an error: retryable or not, and the server's wait.

    ``rejected`` marks a request that the provider answered and refused (a 4xx
    status other than 408, 409 and 429): that is no sign of an outage, so it
    does not count towards the circuit breaker.
    """

    retryable: bool
    retry_after: float | None
    description: str
    rejected: bool = False


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds of a ``Retry-After`` header (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def call_with_retries(
    request: Callable[[], T],
    classify: Callable[[Exception], Failure | None],
    policy: RetryPolicy,
    *,
    operation: str,
    sleep: Callable[[float], None] = time.sleep,
    breaker: CircuitBreaker | None = None,
    error_type: Callable[[str], Exception] = EmbeddingError,
) -> T:
    """Run ``request``, retrying the errors that ``classify`` marks retryable.

    ``classify`` returns None for an exception it does not know, which is
    re-raised unchanged. Raises ``error_type`` naming ``operation`` and the
    last error when the attempts run out, the error is not retryable, the
    server asks to wait longer than ``policy.max_retry_after`` or ``breaker``
    is open. In the last case the CircuitOpenError is the ``__cause__``.
    """
    for attempt in range(1, policy.max_attempts + 1):
        if breaker is not None:
            try:
                breaker.before_call()
            except CircuitOpenError as error:
                raise error_type(f"{operation} was not sent: {error}") from error
        try:
            result = request()
        except Exception as error:
            failure = classify(error)
            if failure is None:
                raise
            if breaker is not None and not failure.rejected:
                breaker.record_failure()
            tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
            wait = failure.retry_after
            if wait is not None and wait > policy.max_retry_after:
                raise error_type(
                    f"{operation} failed after {tries}: {failure.description} "
                    f"(the server asked to wait {wait:.0f} s, more than the "
                    f"{policy.max_retry_after:.0f} s allowed)"
                ) from error
            if not failure.retryable or attempt == policy.max_attempts:
                raise error_type(
                    f"{operation} failed after {tries}: {failure.description}"
                ) from error
            delay = policy.backoff(attempt - 1, failure.retry_after)
            logger.warning(
                "%s failed (attempt %d of %d), retrying in %.1f s: %s",
                operation,
                attempt,
                policy.max_attempts,
                delay,
                failure.description,
            )
            sleep(delay)
            continue
        if breaker is not None:
            breaker.record_success()
        return result
    raise AssertionError("unreachable: the loop returns or raises")


class RateLimiter:
    """Token buckets for requests per minute and tokens per minute.

    A limit of 0 turns that bucket off. ``acquire`` blocks until the request
    fits both buckets, so a run stays under the provider's quota instead of
    collecting 429 responses. Each bucket starts full, which allows a burst of
    one minute's quota.
    """

    def __init__(
        self,
        requests_per_minute: float = 0.0,
        tokens_per_minute: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_minute < 0 or tokens_per_minute < 0:
            raise EmbeddingError(
                f"Invalid rate limit {requests_per_minute} requests or "
                f"{tokens_per_minute} tokens per minute: expected 0 (off) or more."
            )
        self._limits = (requests_per_minute, tokens_per_minute)
        self._levels = [requests_per_minute, tokens_per_minute]
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self, tokens: int) -> float:
        """Wait until one request of ``tokens`` tokens is allowed; return the wait."""
        waited = 0.0
        with self._lock:
            while True:
                self._refill()
                needs = (1.0, float(tokens))
                shortfall = 0.0
                for limit, level, need in zip(
                    self._limits, self._levels, needs, strict=True
                ):
                    if limit <= 0:
                        continue
                    # A request larger than the whole bucket waits for a full one.
                    need = min(need, limit)
                    if level < need:
                        shortfall = max(shortfall, (need - level) * 60.0 / limit)
                if shortfall <= 0:
                    for index, need in enumerate(needs):
                        if self._limits[index] > 0:
                            self._levels[index] -= min(need, self._limits[index])
                    return waited
                self._sleep(shortfall)
                waited += shortfall

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        self._updated = now
        for index, limit in enumerate(self._limits):
            if limit > 0:
                self._levels[index] = min(
                    limit, self._levels[index] + elapsed * limit / 60.0
                )


def estimate_tokens(texts: list[str]) -> int:
    """Estimate the tokens of ``texts`` as one per four characters.

    NOTE: four characters per token is a rule of thumb for English BPE
    vocabularies. Hebrew usually takes more tokens per character, so set the
    tokens-per-minute limit with some margin.
    """
    return sum(len(text) // 4 + 1 for text in texts)
