"""Progress of an embedding run: rate, ETA and a status file for the service.

The status file is JSON in the data folder, replaced atomically (write to a
temporary file, then ``os.replace``), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STATUS_FILE = "embed-status.json"
# The status file is rewritten at most this often while a run advances, and
# always at its start and end.
WRITE_INTERVAL_SECONDS = 2.0


@dataclass
class EmbedStatus:
    """The state of the latest embedding run, as stored in the status file."""

    state: str  # "running", "done", "failed" or "interrupted"
    provider: str
    scope: list[str]
    total: int
    done: int = 0
    rate_per_second: float | None = None
    eta_seconds: float | None = None
    started: str = ""
    updated: str = ""
    last_error: str | None = None
    pid: int = 0


def status_path(data_dir: Path) -> Path:
    return data_dir / STATUS_FILE


def read_status(data_dir: Path) -> dict[str, Any] | None:
    """Return the stored status, or None when no run has written one.

    A "running" status whose process is gone is reported as "interrupted".
    That check only holds when the reader runs on the same machine.
    """
    path = status_path(data_dir)
    try:
        status: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning("Unreadable embedding status %s: %s", path, error)
        return None
    if status.get("state") == "running" and not _alive(int(status.get("pid", 0))):
        status["state"] = "interrupted"
    return status


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def format_duration(seconds: float | None) -> str:
    """Format seconds as H:MM:SS, or "unknown"."""
    if seconds is None:
        return "unknown"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class EmbedProgress:
    """Counts embedded segments, derives rate and ETA, and writes the status file.

    The rate counts only this run's segments over this run's time, so vectors
    kept from an earlier run do not inflate it. ``report`` receives a line of
    progress at most every ``WRITE_INTERVAL_SECONDS`` and at the end.
    """

    def __init__(
        self,
        data_dir: Path,
        provider: str,
        scope: list[str],
        *,
        report: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = status_path(data_dir)
        self.status = EmbedStatus(
            state="running", provider=provider, scope=scope, total=0, pid=os.getpid()
        )
        self._report = report
        self._clock = clock
        self._started = clock()
        self._written = 0.0

    def start(self, total: int) -> None:
        self.status.total = total
        self.status.started = _now()
        self._started = self._clock()
        self._write()

    def advance(self, count: int) -> None:
        self.status.done += count
        elapsed = self._clock() - self._started
        if elapsed > 0 and self.status.done:
            rate = self.status.done / elapsed
            self.status.rate_per_second = round(rate, 2)
            left = self.status.total - self.status.done
            self.status.eta_seconds = round(left / rate)
        if self._clock() - self._written >= WRITE_INTERVAL_SECONDS:
            self._write()
            self._emit()

    def fail(self, error: BaseException) -> None:
        self.status.state = "failed"
        self.status.last_error = str(error)
        self._write()
        self._emit()

    def interrupt(self) -> None:
        """Record that the run was stopped (Ctrl-C or SIGTERM) before the end."""
        self.status.state = "interrupted"
        self.status.eta_seconds = None
        self._write()
        self._emit()

    def finish(self) -> None:
        self.status.state = "done"
        self.status.eta_seconds = 0
        self._write()
        self._emit()

    def line(self) -> str:
        """Return a one-line summary: done/total, percentage, rate and ETA."""
        status = self.status
        share = 100.0 * status.done / status.total if status.total else 100.0
        rate = status.rate_per_second
        rate_text = f"{rate:.1f} segments/s" if rate is not None else "rate unknown"
        return (
            f"embed: {status.done}/{status.total} ({share:.1f}%), {rate_text}, "
            f"ETA {format_duration(status.eta_seconds)}"
        )

    def _emit(self) -> None:
        if self._report is not None:
            self._report(self.line())

    def _write(self) -> None:
        self.status.updated = _now()
        self._written = self._clock()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(asdict(self.status)), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as error:
            # The status file is for operators; embedding goes on without it.
            logger.error("Cannot write embedding status %s: %s", self.path, error)
