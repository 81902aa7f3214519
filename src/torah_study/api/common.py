"""Pieces shared by the route modules: services, filters and SSE encoding."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request

from torah_study.accounts.questions import QuestionLimited
from torah_study.answer.pipeline import (
    AnswerCancelled,
    DoneEvent,
    ErrorEvent,
    Event,
    SourcesEvent,
    TokenEvent,
    VerificationEvent,
)
from torah_study.api.shutdown import STOP_WAIT_SECONDS, StreamDrain
from torah_study.calendar import PortionCalendar
from torah_study.conversations.chat import ConversationChat
from torah_study.index.base import Filters
from torah_study.library.parashot import load_parashot
from torah_study.library.refs import RefError
from torah_study.service import Accounts, LibraryWatcher, Services, build_rewriter

logger = logging.getLogger(__name__)

SHUTDOWN_MESSAGE = (
    "The service is shutting down, so this answer was stopped. Ask again in a moment."
)


def install_library(app: FastAPI, services: Services) -> None:
    """Serve ``services`` and rebuild the components that hold its catalog."""
    settings = services.settings
    app.state.calendar = PortionCalendar(
        load_parashot(settings.parashot_path), services.catalog, services.retriever
    )
    app.state.chat = ConversationChat(
        app.state.accounts.conversations,
        services.pipeline,
        build_rewriter(settings, services),
    )
    app.state.services = services


def refresh_library(app: FastAPI) -> Services:
    """Pick up a library changed by an ingest, then return the current view.

    Checks at most once per ``index_refresh_seconds``; see LibraryWatcher.
    """
    watcher: LibraryWatcher | None = getattr(app.state, "watcher", None)
    if watcher is not None:
        watcher.check(app.state.services, partial(install_library, app))
    services: Services = app.state.services
    return services


def get_services(request: Request) -> Services:
    return refresh_library(request.app)


ServicesDep = Annotated[Services, Depends(get_services)]


def resolve_filters(
    services: Services, books: list[str], categories: list[str]
) -> Filters:
    """Resolve filter names against the catalog; unknown names are a 422."""
    try:
        titles, names = services.catalog.resolve_filters(books, categories)
    except RefError as error:
        raise HTTPException(status_code=422, detail=str(error)) from error
    return Filters(titles, names)


def reserve_question(accounts: Accounts, user_id: str) -> list[int]:
    """Count a question against its account's limits; 429 when one is full.

    Returns the ids of the counted events, for ``QuestionLimits.release``.
    """
    try:
        return accounts.questions.reserve(user_id)
    except QuestionLimited as error:
        raise HTTPException(
            status_code=429,
            detail=str(error),
            headers={"Retry-After": str(error.retry_after)},
        ) from error


def encode_event(event: Event) -> dict[str, str]:
    """Turn a pipeline event into an SSE message with a JSON data field."""
    payload: Any
    if isinstance(event, TokenEvent):
        payload = event.text
    elif isinstance(event, SourcesEvent):
        payload = {"sources": event.sources, "mode": event.mode}
    elif isinstance(event, VerificationEvent):
        payload = event.report
    else:
        payload = {k: v for k, v in asdict(event).items() if k != "kind"}
    return {"event": event.kind, "data": json.dumps(payload, ensure_ascii=False)}


async def pump(
    events: Iterator[Event],
    cancel: threading.Event | None = None,
    drain: StreamDrain | None = None,
) -> AsyncIterator[Event]:
    """Run a blocking event generator on its own thread and yield its events.

    When the consumer stops early (the client disconnected), ``cancel`` is
    set and the generator is closed on its own thread after its next event,
    which stops the answer model and lets the turn save itself as
    interrupted. A generator that watches ``cancel`` (AnswerPipeline.run)
    stops sooner, at the model's next piece, and its AnswerCancelled ends
    the stream quietly.

    With a ``drain``, a stream still running when the server's shutdown
    grace period ends is stopped the same way. It waits up to
    STOP_WAIT_SECONDS for the generator to end (and save its answer), then
    yields a final ErrorEvent with the code ``server_shutdown``.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = cancel if cancel is not None else threading.Event()
    end = object()
    shutdown = object()

    def put(item: Any) -> None:
        # A closed event loop means the request has ended.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        # TODO: a model that blocks without producing a piece is stopped only
        # when its next piece arrives. Neither ``cancel`` nor closing the
        # generator can interrupt a blocking call.
        try:
            for event in events:
                if stop.is_set():
                    break
                put(event)
        except AnswerCancelled:
            logger.info("An answer stream stopped because it was cancelled")
        except BaseException as error:
            put(error)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    logger.exception("Closing an answer stream failed")
            put(end)

    def stop_for_shutdown() -> None:
        stop.set()
        queue.put_nowait(shutdown)

    number = drain.register(stop_for_shutdown) if drain is not None else None
    stopped_at: float | None = None
    ended = False
    # The thread runs in a copy of this context, so its log lines keep the
    # request's ids and its spans stay under the request's span.
    context = contextvars.copy_context()
    threading.Thread(
        target=context.run, args=(work,), name="answer-stream", daemon=True
    ).start()
    try:
        while True:
            if stopped_at is None:
                item = await queue.get()
            else:
                left = stopped_at + STOP_WAIT_SECONDS - loop.time()
                try:
                    item = await asyncio.wait_for(queue.get(), max(left, 0.0))
                except TimeoutError:
                    logger.warning(
                        "An answer stream did not stop within %s s of the shutdown",
                        STOP_WAIT_SECONDS,
                    )
                    yield ErrorEvent(SHUTDOWN_MESSAGE, "server_shutdown")
                    return
            if item is shutdown:
                stopped_at = loop.time()
                continue
            if item is end:
                if stopped_at is not None and not ended:
                    yield ErrorEvent(SHUTDOWN_MESSAGE, "server_shutdown")
                return
            if isinstance(item, BaseException):
                raise item
            ended = isinstance(item, DoneEvent | ErrorEvent)
            yield item
    finally:
        stop.set()
        if drain is not None and number is not None:
            drain.unregister(number, stopped=stopped_at is not None)
