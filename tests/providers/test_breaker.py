"""CircuitBreaker with a fake clock, and call_with_retries that uses one."""

from __future__ import annotations

import threading

import pytest

from torah_study.embeddings.retry import Failure, RetryPolicy, call_with_retries
from torah_study.providers.breaker import CircuitBreaker, CircuitOpenError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, failures: int = 3) -> CircuitBreaker:
    return CircuitBreaker(
        "Test provider", failures=failures, window=10.0, cooldown=30.0, clock=clock
    )


def state(breaker: CircuitBreaker) -> str:
    """Read the state anew; mypy would keep the type narrowed by a comparison."""
    return breaker.state


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.record_failure()


def test_opens_after_consecutive_failures() -> None:
    breaker = make(Clock())
    fail(breaker, 2)
    assert state(breaker) == "closed"
    fail(breaker, 1)
    assert state(breaker) == "open"
    with pytest.raises(CircuitOpenError, match="Test provider is unavailable"):
        breaker.before_call()


def test_success_resets_the_count() -> None:
    breaker = make(Clock())
    fail(breaker, 2)
    breaker.record_success()
    fail(breaker, 2)
    assert state(breaker) == "closed"


def test_failures_outside_window_start_over() -> None:
    clock = Clock()
    breaker = make(clock)
    fail(breaker, 2)
    clock.now = 11.0
    fail(breaker, 2)
    assert state(breaker) == "closed"
    fail(breaker, 1)
    assert state(breaker) == "open"


def test_half_open_lets_one_trial_through() -> None:
    clock = Clock()
    breaker = make(clock)
    fail(breaker, 3)
    clock.now = 31.0
    assert state(breaker) == "half-open"
    breaker.before_call()
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    breaker.record_success()
    assert state(breaker) == "closed"
    breaker.before_call()


def test_failed_trial_reopens() -> None:
    clock = Clock()
    breaker = make(clock)
    fail(breaker, 3)
    clock.now = 31.0
    breaker.before_call()
    breaker.record_failure()
    assert state(breaker) == "open"
    clock.now = 60.0
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.now = 62.0
    breaker.before_call()


def test_abandoned_trial_expires() -> None:
    clock = Clock()
    breaker = make(clock)
    fail(breaker, 3)
    clock.now = 31.0
    breaker.before_call()
    clock.now = 62.0
    breaker.before_call()
    assert state(breaker) == "half-open"


def test_counts_failures_from_many_threads() -> None:
    breaker = make(Clock(), failures=400)
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(50):
            breaker.record_failure()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state(breaker) == "open"


def test_invalid_settings_rejected() -> None:
    with pytest.raises(ValueError, match="failures"):
        CircuitBreaker("x", failures=0)
    with pytest.raises(ValueError, match="cooldown"):
        CircuitBreaker("x", cooldown=0)


def _classify(error: Exception) -> Failure | None:
    if isinstance(error, ConnectionError):
        return Failure(True, None, str(error))
    if isinstance(error, PermissionError):
        return Failure(False, None, str(error), rejected=True)
    return None


def test_retries_stop_when_breaker_opens() -> None:
    breaker = make(Clock(), failures=2)
    calls: list[int] = []

    def request() -> str:
        calls.append(1)
        raise ConnectionError("reset")

    policy = RetryPolicy(max_attempts=5, base_delay=0.0)
    with pytest.raises(RuntimeError, match="was not sent") as caught:
        call_with_retries(
            request,
            _classify,
            policy,
            operation="Test call",
            sleep=lambda _: None,
            breaker=breaker,
            error_type=RuntimeError,
        )
    assert len(calls) == 2
    assert isinstance(caught.value.__cause__, CircuitOpenError)


def test_rejected_requests_do_not_open() -> None:
    breaker = make(Clock(), failures=1)

    def request() -> str:
        raise PermissionError("HTTP 401")

    with pytest.raises(RuntimeError, match="HTTP 401"):
        call_with_retries(
            request,
            _classify,
            RetryPolicy(max_attempts=3),
            operation="Test call",
            breaker=breaker,
            error_type=RuntimeError,
        )
    assert state(breaker) == "closed"


def test_long_retry_after_fails_at_once() -> None:
    calls: list[int] = []

    def request() -> str:
        calls.append(1)
        raise ConnectionError("busy")

    def classify(error: Exception) -> Failure | None:
        return Failure(True, 120.0, str(error))

    with pytest.raises(RuntimeError, match="asked to wait 120 s"):
        call_with_retries(
            request,
            classify,
            RetryPolicy(max_attempts=3, max_retry_after=10.0),
            operation="Test call",
            sleep=lambda _: None,
            error_type=RuntimeError,
        )
    assert len(calls) == 1
