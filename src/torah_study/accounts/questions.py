"""Per-account limits on questions, counted in the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from torah_study.accounts.ratelimit import RateLimited, RateLimiter

# Every key of these limits starts with this, so the sign-in limiter, whose
# window is shorter, leaves their events alone when it prunes.
KEY_PREFIX = "question:"


@dataclass(frozen=True)
class QuestionWindow:
    name: str
    limiter: RateLimiter
    limit: int


class QuestionLimited(Exception):
    """An account reached a question limit; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int, limit: int, window: str) -> None:
        super().__init__(
            f"Question limit reached: {limit} per {window} for each account. "
            f"Try again in {retry_after} seconds."
        )
        self.retry_after = retry_after
        self.limit = limit
        self.window = window


class QuestionLimits:
    """Sliding-window limits on the questions of one account.

    Each question is counted on a per-minute and a per-day key of its
    account. A limit of 0 turns that window off.
    """

    def __init__(
        self, sessions: sessionmaker[Session], per_minute: int, per_day: int
    ) -> None:
        self.sessions = sessions
        self.windows = [
            QuestionWindow("minute", RateLimiter(timedelta(minutes=1)), per_minute),
            QuestionWindow("day", RateLimiter(timedelta(days=1)), per_day),
        ]

    def reserve(self, user_id: str) -> list[int]:
        """Count one question of ``user_id`` and return the ids of its events.

        Raises QuestionLimited, and counts nothing, when any window is full.
        Its ``retry_after`` is the longest wait among the full windows. The
        check and the count share one write transaction, so parallel
        requests cannot pass the same free place.
        """
        active = [window for window in self.windows if window.limit > 0]
        if not active:
            return []
        with self.sessions.begin() as db:
            events = []
            full: list[QuestionLimited] = []
            for window in active:
                key = f"{KEY_PREFIX}{window.name}:{user_id}"
                try:
                    events += window.limiter.reserve(db, (key, window.limit))
                except RateLimited as error:
                    full.append(
                        QuestionLimited(error.retry_after, window.limit, window.name)
                    )
            if full:
                # Raising inside the block rolls back the events added above.
                raise max(full, key=lambda limited: limited.retry_after)
            db.flush()
            return [event.id for event in events]

    def release(self, ids: list[int]) -> None:
        """Take back the count of a question that was not asked after all."""
        if not ids:
            return
        with self.sessions.begin() as db:
            self.windows[0].limiter.release(db, ids)

    def prune(self, db: Session) -> int:
        """Delete the events that every window has left behind."""
        return sum(
            window.limiter.prune(db, prefix=f"{KEY_PREFIX}{window.name}:")
            for window in self.windows
        )
