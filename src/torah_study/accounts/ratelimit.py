"""Counting attempts in the database, shared by every API process."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from torah_study.db.models import RateEvent


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many attempts; wait and try again.")
        self.retry_after = retry_after


class RateLimiter:
    """Sliding-window limits on named keys such as ``login:account:<email>``.

    Checking a key and recording an attempt must happen in one write
    transaction, or parallel requests could all pass the check before any of
    them is recorded. On PostgreSQL each key is locked for the rest of the
    transaction; on SQLite write transactions already run one at a time.
    """

    def __init__(self, window: timedelta) -> None:
        self.window = window

    def reserve(self, session: Session, *limits: tuple[str, int]) -> list[RateEvent]:
        """Check every (key, limit) pair, then count one attempt on each key.

        Raises RateLimited when a key has reached its limit. The attempts are
        counted before the caller does the slow part (checking a password), so
        at most ``limit`` parallel attempts get that far. ``release`` takes
        back the attempts of a request that succeeded.
        """
        for key, limit in limits:
            self._lock(session, key)
            self.check(session, key, limit)
        events = [RateEvent(key=key, created_at=datetime.now(UTC)) for key, _ in limits]
        session.add_all(events)
        self._forget_old(session, [key for key, _ in limits])
        return events

    def release(self, session: Session, ids: list[int]) -> None:
        session.execute(delete(RateEvent).where(RateEvent.id.in_(ids)))

    def check(self, session: Session, key: str, limit: int) -> None:
        """Raise RateLimited when ``key`` has ``limit`` events inside the window."""
        since = datetime.now(UTC) - self.window
        count, oldest = session.execute(
            select(func.count(RateEvent.id), func.min(RateEvent.created_at)).where(
                RateEvent.key == key, RateEvent.created_at >= since
            )
        ).one()
        if count >= limit:
            retry = self.window.total_seconds()
            if oldest is not None:
                # min() comes back without the column type on some backends.
                if isinstance(oldest, str):
                    oldest = datetime.fromisoformat(oldest)
                if oldest.tzinfo is None:
                    oldest = oldest.replace(tzinfo=UTC)
                retry = (oldest + self.window - datetime.now(UTC)).total_seconds()
            raise RateLimited(max(1, int(retry) + 1))

    def clear(self, session: Session, key: str) -> None:
        session.execute(delete(RateEvent).where(RateEvent.key == key))

    def prune(
        self, session: Session, prefix: str = "", exclude: Sequence[str] = ()
    ) -> int:
        """Delete events older than the window and return how many.

        Only keys that start with ``prefix`` and with none of ``exclude``
        are pruned, so limiters with longer windows keep their events.
        """
        cutoff = datetime.now(UTC) - self.window
        statement = delete(RateEvent).where(RateEvent.created_at < cutoff)
        if prefix:
            statement = statement.where(
                RateEvent.key.startswith(prefix, autoescape=True)
            )
        for other in exclude:
            statement = statement.where(
                ~RateEvent.key.startswith(other, autoescape=True)
            )
        result = session.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0)

    def _forget_old(self, session: Session, keys: list[str]) -> None:
        cutoff = datetime.now(UTC) - self.window
        session.execute(
            delete(RateEvent).where(
                RateEvent.key.in_(keys), RateEvent.created_at < cutoff
            )
        )

    @staticmethod
    def _lock(session: Session, key: str) -> None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": key},
            )
