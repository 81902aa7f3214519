"""Counting failed attempts in the database, shared by every API process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from torah_study.db.models import RateEvent


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many attempts; wait and try again.")
        self.retry_after = retry_after


class RateLimiter:
    """Sliding-window limits on named keys such as ``login:account:<email>``."""

    def __init__(self, window: timedelta) -> None:
        self.window = window

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

    def record(self, session: Session, *keys: str) -> None:
        now = datetime.now(UTC)
        for key in keys:
            session.add(RateEvent(key=key, created_at=now))
        # Forget what has left the window for these keys.
        session.execute(
            delete(RateEvent).where(
                RateEvent.key.in_(keys), RateEvent.created_at < now - self.window
            )
        )

    def clear(self, session: Session, key: str) -> None:
        session.execute(delete(RateEvent).where(RateEvent.key == key))

    def prune(self, session: Session) -> int:
        """Delete every event older than the window; returns how many."""
        cutoff = datetime.now(UTC) - self.window
        result = session.execute(delete(RateEvent).where(RateEvent.created_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)
