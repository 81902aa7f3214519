"""A circuit breaker per remote provider.

After ``failures`` consecutive failed requests, none more than ``window``
seconds after the one before, the breaker opens: for ``cooldown`` seconds
every call fails at once with CircuitOpenError instead of waiting for a
provider that is down. Then one trial call is let through (half-open). Its
success closes the breaker, its failure opens it for another cool-down.
Requests run in a thread pool, so every state change holds a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from torah_study.config import Settings

logger = logging.getLogger(__name__)

State = Literal["closed", "open", "half-open"]


class CircuitOpenError(RuntimeError):
    """Raised instead of calling a provider whose breaker is open."""

    def __init__(self, provider: str, remaining: float, failures: int) -> None:
        super().__init__(
            f"{provider} is unavailable: {failures} consecutive requests failed, "
            f"so no request is sent for {remaining:.0f} more seconds."
        )
        self.provider = provider
        self.remaining = remaining


class CircuitBreaker:
    """Counts consecutive failures of one provider and fails fast while open."""

    def __init__(
        self,
        provider: str,
        *,
        failures: int = 5,
        window: float = 60.0,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError(f"Invalid failures {failures}: expected 1 or more.")
        if window <= 0 or cooldown <= 0:
            raise ValueError(
                f"Invalid window {window} or cooldown {cooldown}: expected seconds "
                "above 0."
            )
        self.provider = provider
        self._threshold = failures
        self._window = window
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._last_failure = 0.0
        self._opened_at: float | None = None
        # When the running trial call started, or None. A trial whose caller
        # never recorded an outcome expires after one cool-down.
        self._trial_started: float | None = None

    @property
    def state(self) -> State:
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self._cooldown:
            return "open"
        return "half-open"

    def before_call(self) -> None:
        """Raise CircuitOpenError unless a request may be sent now.

        While half-open only one caller gets through, as the trial; the others
        fail fast until it has recorded its outcome.
        """
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            now = self._clock()
            trial = self._trial_started
            if state == "half-open" and (trial is None or now - trial > self._cooldown):
                self._trial_started = now
                logger.info("Sending a trial request to %s", self.provider)
                return
            assert self._opened_at is not None
            remaining = max(0.0, self._opened_at + self._cooldown - now)
            raise CircuitOpenError(self.provider, remaining, self._consecutive)

    def record_success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                logger.info("%s answered again; closing its breaker", self.provider)
            self._consecutive = 0
            self._opened_at = None
            self._trial_started = None

    def record_failure(self) -> None:
        with self._lock:
            now = self._clock()
            if self._trial_started is not None:
                self._trial_started = None
                self._opened_at = now
                self._consecutive += 1
                self._last_failure = now
                logger.warning(
                    "Trial request to %s failed; failing fast for %.0f s",
                    self.provider,
                    self._cooldown,
                )
                return
            if self._consecutive and now - self._last_failure > self._window:
                self._consecutive = 0
            self._consecutive += 1
            self._last_failure = now
            if self._opened_at is None and self._consecutive >= self._threshold:
                self._opened_at = now
                logger.warning(
                    "%s failed %d times in a row; failing fast for %.0f s",
                    self.provider,
                    self._consecutive,
                    self._cooldown,
                )


def build_breaker(provider: str, settings: Settings) -> CircuitBreaker:
    """Create the breaker of ``provider`` with the thresholds of ``settings``."""
    return CircuitBreaker(
        provider,
        failures=settings.breaker_failures,
        window=settings.breaker_window_seconds,
        cooldown=settings.breaker_cooldown_seconds,
    )
