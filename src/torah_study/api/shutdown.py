"""Graceful shutdown: answer streams get a grace period, then stop cleanly.

When uvicorn receives SIGTERM or SIGINT it stops accepting connections and
waits for the open ones. ``watch_exit_signals`` also tells the app's
``StreamDrain``, which gives the running answer streams
``shutdown_grace_seconds`` to finish. A stream still running at the deadline
is stopped: its answer is saved as interrupted and its client receives a
final ``error`` event with the code ``server_shutdown``.

sse-starlette (3.7) would otherwise cancel every stream about half a second
after the signal, without a final event and before the answer thread had
saved its row, so ``watch_exit_signals`` turns its automatic drain off.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from sse_starlette.sse import AppStatus

logger = logging.getLogger(__name__)

# How long a stopped stream waits for its answer thread to save the partial
# answer. The thread stops at the model's next piece, so a model that sends
# nothing for longer leaves the row to ``ConversationStore.interrupt_open``.
STOP_WAIT_SECONDS = 5.0


class StreamDrain:
    """The running answer streams of one app, and their deadline at shutdown."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.finished = 0
        self.stopped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._streams: dict[int, Callable[[], None]] = {}
        self._numbers = itertools.count()
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def shutting_down(self) -> bool:
        return self._deadline is not None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start listening for the server's shutdown. Call it on the app's loop."""
        self._loop = loop

    def detach(self) -> None:
        """Stop listening and log how the streams of the shutdown ended."""
        if self._timer is not None:
            self._timer.cancel()
        if self.shutting_down:
            logger.info(
                "Shutdown: %d answer streams finished in time, %d were stopped",
                self.finished,
                self.stopped,
            )

    def begin(self) -> None:
        """Start the grace period. Safe to call from a signal handler or a thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._begin)

    def register(self, stop: Callable[[], None]) -> int:
        """Track a running stream, whose ``stop`` is called on the loop at the deadline.

        Returns the number to pass to ``unregister``.
        """
        number = next(self._numbers)
        self._streams[number] = stop
        loop, deadline = self._loop, self._deadline
        if loop is not None and deadline is not None and loop.time() >= deadline:
            loop.call_soon(stop)
        return number

    def unregister(self, number: int, stopped: bool) -> None:
        """Forget an ended stream. ``stopped`` is True when the deadline ended it."""
        self._streams.pop(number, None)
        if not self.shutting_down:
            return
        if stopped:
            self.stopped += 1
        else:
            self.finished += 1

    def _begin(self) -> None:
        if self._loop is None or self._deadline is not None:
            return
        self._deadline = self._loop.time() + self.grace_seconds
        logger.info(
            "Shutting down: %d answer streams running get %s s to finish",
            len(self._streams),
            self.grace_seconds,
        )
        self._timer = self._loop.call_later(self.grace_seconds, self._expire)

    def _expire(self) -> None:
        running = list(self._streams.values())
        if running:
            logger.warning(
                "Stopping %d answer streams still running after the %s s grace period",
                len(running),
                self.grace_seconds,
            )
        for stop in running:
            stop()


def watch_exit_signals(drain: StreamDrain) -> Callable[[], None]:
    """Start ``drain``'s grace period when uvicorn receives SIGTERM or SIGINT.

    uvicorn (0.55) installs ``Server.handle_exit`` with ``signal.signal``
    before it runs the app's lifespan, so that handler is wrapped here. An
    app served otherwise (in a thread, or by another server) is left alone.
    Returns a function that puts the previous handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Callable[[int, FrameType | None], Any]] = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(number)
        if not isinstance(getattr(handler, "__self__", None), uvicorn.Server):
            continue
        assert callable(handler)
        previous[number] = handler

        def on_signal(
            received: int,
            frame: FrameType | None,
            handler: Callable[[int, FrameType | None], Any] = handler,
        ) -> None:
            handler(received, frame)
            drain.begin()

        signal.signal(number, on_signal)
    if previous:
        # sse-starlette would otherwise cancel every stream at the signal.
        AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    return restore


def uvicorn_grace_seconds(grace_seconds: int) -> int:
    """Return uvicorn's ``timeout_graceful_shutdown`` for a stream grace period.

    uvicorn cancels the requests still running at its timeout, so it waits a
    little longer than the streams' own deadline and their stop.
    """
    return grace_seconds + int(STOP_WAIT_SECONDS) + 1
