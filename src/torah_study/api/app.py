"""FastAPI application: accounts, conversations, chat, search and texts."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from torah_study import __version__
from torah_study.answer.llm.base import ProviderError
from torah_study.answer.pipeline import (
    DoneEvent,
    ErrorEvent,
    Event,
    SourcesEvent,
    VerificationEvent,
    source_payload,
)
from torah_study.api import auth, conversations
from torah_study.api.auth import AccountsDep, IdentityDep, current_identity
from torah_study.api.common import (
    ServicesDep,
    encode_event,
    install_library,
    pump,
    refresh_library,
    reserve_question,
    resolve_filters,
)
from torah_study.api.headers import SecurityHeaders, add_docs
from torah_study.api.limits import BodySizeLimit
from torah_study.api.schemas import (
    ChatRequest,
    ChatResponse,
    RelatedOut,
    SearchResponse,
    SegmentOut,
    TextResponse,
    check_text,
)
from torah_study.api.shutdown import StreamDrain, watch_exit_signals
from torah_study.api.web import add_web_app, find_web_dir
from torah_study.calendar import CalendarUnavailable, PortionCalendar
from torah_study.config import Settings, get_settings
from torah_study.embeddings.status import read_status
from torah_study.index.base import SegmentRecord, position_key, position_upper_bound
from torah_study.library.refs import Ref, RefError
from torah_study.observability import metrics, tracing
from torah_study.observability.logs import add_secrets_of
from torah_study.observability.middleware import ObservabilityMiddleware
from torah_study.service import (
    STALE_STREAM,
    Accounts,
    LibraryWatcher,
    Services,
    build_accounts,
    build_services,
)

logger = logging.getLogger(__name__)

MAX_FILTERS = 50
# Segments returned at most by /texts/{ref}?section=true.
MAX_SECTION_SEGMENTS = 400
SWEEP_SECONDS = 60.0
SIGNED_IN = [Depends(current_identity)]
# JSON names of the non-finite floats that Python's JSON parser accepts.
NON_FINITE_NAMES = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}

# Methods and headers that a page on an allowed origin may send. Tokens
# travel in the Authorization header, not in cookies, so credentials stay off.
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_HEADERS = ["Authorization", "Content-Type", "Accept", "X-Request-ID"]
CORS_EXPOSED = ["Retry-After", "Content-Disposition", "X-Request-ID"]


class TorahStudyApp(FastAPI):
    """FastAPI with SecurityHeaders outside Starlette's error middleware.

    Middleware added with ``add_middleware`` runs inside the middleware that
    turns an unhandled exception into a 500, so it never sees that response.
    """

    def build_middleware_stack(self) -> ASGIApp:
        settings: Settings = self.state.settings
        return SecurityHeaders(
            super().build_middleware_stack(), behind_https=settings.behind_https
        )


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    accounts: Accounts | None = None,
) -> FastAPI:
    """Build the app; tests may inject services (a test model) and accounts."""
    settings = settings or get_settings()
    add_secrets_of(settings)
    tracer_provider = tracing.configure_tracing(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = services
        if built is None:
            built = await run_in_threadpool(build_services, settings)
        opened = accounts
        if opened is None:
            # NOTE: conversation titles keep using this first catalog, so a
            # book added by a later ingest is not named in new titles until
            # the process restarts.
            opened = await run_in_threadpool(build_accounts, settings, built.catalog)
        app.state.accounts = opened
        install_library(app, built)
        app.state.watcher = LibraryWatcher(settings.index_refresh_seconds)
        load = getattr(built.pipeline.model, "load", None)
        if load is not None:
            try:
                await run_in_threadpool(load)
            except ProviderError as error:
                logger.error(
                    "Loading %s failed: %s", built.pipeline.provider_name, error
                )
        _warm_in_background(built)
        sweeper = asyncio.create_task(_sweep_stale_answers(opened))
        drain: StreamDrain = app.state.drain
        drain.attach(asyncio.get_running_loop())
        restore_signals = watch_exit_signals(drain)
        logger.info(
            "Serving %d segments (%d with vectors), answers by %s, accounts in %s",
            built.store.count(),
            built.store.vector_count(),
            built.pipeline.provider_name,
            opened.engine.url.render_as_string(hide_password=True),
        )
        yield
        sweeper.cancel()
        restore_signals()
        drain.detach()
        await run_in_threadpool(_interrupt_open_answers, opened)
        if accounts is None:
            opened.close()
        if tracer_provider is not None:
            tracing.shutdown_tracing(tracer_provider)
        # TODO: a worker that crashes never gets here, so its open streams
        # stay in torah_study_sse_streams_active until the server restarts.
        metrics.mark_process_dead(os.getpid())
        logger.info("Stopping")

    app = TorahStudyApp(
        title="Torah Study",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.drain = StreamDrain(settings.shutdown_grace_seconds)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    if settings.cors_origins:
        # Added after the body size check, so it runs before it: preflight
        # requests get their response first.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            allow_credentials=False,
            max_age=600,
        )
    add_docs(app)
    # Added last, so it is the outermost: it sees 413s and every route.
    app.add_middleware(ObservabilityMiddleware)
    app.include_router(auth.router)
    app.include_router(conversations.router)
    _add_routes(app)
    if settings.metrics_enabled:
        _add_metrics_route(app, settings)
    add_web_app(app, find_web_dir(settings.web_dir))
    _document_error_detail(app)
    return app


def _document_error_detail(app: FastAPI) -> None:
    """Declare that a 422 ``detail`` is a list of errors or a message.

    FastAPI documents only the list that request validation returns, but the
    routes also return 422 with a message string (an unknown filter, a blank
    query, an invalid cursor).
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            schemas = document.get("components", {}).get("schemas", {})
            fields = schemas.get("HTTPValidationError", {}).get("properties", {})
            if "detail" in fields:
                listed = fields["detail"]
                fields["detail"] = {
                    "anyOf": [listed, {"type": "string"}],
                    "title": listed.pop("title", "Detail"),
                }
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _sweep_stale_answers(accounts: Accounts) -> None:
    """Mark answers whose process died as interrupted, once a minute.

    While tokens arrive a stream writes its row at least every 30 seconds,
    so a row left ``streaming`` for five minutes is taken to be orphaned.
    """
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            count = await run_in_threadpool(
                accounts.conversations.recover_stale, STALE_STREAM
            )
        except Exception:
            logger.exception("Looking for unfinished answers failed")
            continue
        if count:
            logger.warning("Marked %d unfinished answers as interrupted", count)


def _interrupt_open_answers(accounts: Accounts) -> None:
    """Save answers whose thread has not stopped by now as interrupted."""
    try:
        count = accounts.conversations.interrupt_open()
    except Exception:
        logger.exception("Marking unfinished answers as interrupted failed")
        return
    if count:
        logger.warning("Marked %d unfinished answers as interrupted at shutdown", count)


def _warm_in_background(services: Services) -> None:
    """Load the answer model and generate one token in a background thread.

    The first generation after loading is slow, so this keeps that delay out
    of the first question.
    """
    warm = getattr(services.pipeline.model, "warm", None)
    if warm is None:
        return

    def run() -> None:
        try:
            warm()
            logger.info("Answer model %s is warm", services.pipeline.provider_name)
        except Exception as error:
            logger.error(
                "Warming %s failed: %s", services.pipeline.provider_name, error
            )

    threading.Thread(target=run, name="warm-answer-model", daemon=True).start()


async def _validation_error(request: Request, error: Exception) -> Response:
    """Return a 422 whose JSON is ASCII-escaped.

    The default handler echoes the input, and input with a lone surrogate
    cannot be encoded as UTF-8, which turned a client error into a 500.
    Python's JSON parser accepts NaN and Infinity, which are not JSON, so
    echoed non-finite numbers are written as strings.
    """
    assert isinstance(error, RequestValidationError)
    detail = _finite(jsonable_encoder(error.errors()))
    body = json.dumps({"detail": detail}, ensure_ascii=True, allow_nan=False)
    return Response(body, status_code=422, media_type="application/json")


def _finite(value: Any) -> Any:
    """Replace every NaN or infinite float in ``value`` by its JSON name, in place.

    Iterative, because echoed input may be nested too deeply for recursion.
    """
    root = [value]
    pending: list[tuple[Any, Any]] = [(root, 0)]
    while pending:
        container, key = pending.pop()
        item = container[key]
        if isinstance(item, float) and not math.isfinite(item):
            container[key] = NON_FINITE_NAMES[repr(item)]
        elif isinstance(item, list):
            pending.extend((item, index) for index in range(len(item)))
        elif isinstance(item, dict):
            pending.extend((item, name) for name in item)
    return root[0]


def _related(services: Services, ref: str) -> list[RelatedOut]:
    links = services.retriever.links
    if links is None:
        return []
    related = []
    for link in links.related(ref):
        try:
            parsed = services.catalog.parse(link.ref, validate=False)
            he_ref = parsed.hebrew(services.catalog.books[parsed.book].he_title)
        except (RefError, KeyError):
            he_ref = ""
        related.append(RelatedOut(ref=link.ref, he_ref=he_ref, kind=link.kind))
    return related


def _segment(services: Services, record: SegmentRecord) -> SegmentOut:
    he_ref = ""
    try:
        ref = services.catalog.parse(record.ref, validate=False)
        he_ref = ref.hebrew(services.catalog.books[ref.book].he_title)
    except RefError:
        pass
    return SegmentOut(
        ref=record.ref,
        he_ref=he_ref,
        he=record.he,
        en=record.en,
        versions={"he": record.he_version, "en": record.en_version},
        licenses={"he": record.he_license, "en": record.en_license},
    )


def _section_text(services: Services, ref: Ref) -> TextResponse:
    """Build the response of ``/texts/{ref}?section=true``; see ``text``."""
    book = services.catalog.books[ref.book]
    enclosing = ref.section(book.depth)

    # One segment past the cap shows whether the section was cut.
    # NOTE: the store applies the limit before sorting by position, so the
    # segments kept are the first ones only while the index returns a book's
    # segments in position order, as ingestion writes them.
    records = services.retriever.lookup(enclosing, MAX_SECTION_SEGMENTS + 1)
    truncated = len(records) > MAX_SECTION_SEGMENTS
    records = records[:MAX_SECTION_SEGMENTS]

    # The same bounds as Retriever.lookup uses for the ref itself.
    low = position_key(ref.start) if ref.start else ""
    high = position_upper_bound(ref.last)
    highlight = [record.ref for record in records if low <= record.pos < high]
    # NOTE: a ref whose segments all lie past the cap gets an empty highlight.
    if not highlight and not services.retriever.lookup(ref, 1):
        raise HTTPException(
            status_code=404, detail=f"{ref.normal()} has no text in the library."
        )

    return TextResponse(
        ref=ref.normal(),
        he_ref=ref.hebrew(book.he_title),
        book=book.title,
        categories=book.categories,
        segments=[_segment(services, r) for r in records],
        before=[],
        after=[],
        section_ref=enclosing.normal(),
        highlight=highlight,
        truncated=truncated,
    )


def _add_metrics_route(app: FastAPI, settings: Settings) -> None:
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics(
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Prometheus metrics, behind a bearer token when metrics_token is set.

        The labels contain route templates, stages, modes and providers, and
        no user data.
        """
        if token and not hmac.compare_digest(
            (authorization or "").encode(), f"Bearer {token}".encode()
        ):
            raise HTTPException(
                401,
                "Metrics need the token set in TORAH_STUDY_METRICS_TOKEN.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)


def _add_routes(app: FastAPI) -> None:
    @app.get("/health")
    def health(services: ServicesDep) -> dict[str, Any]:
        """Report that the service is up, what it serves and embedding progress."""
        # TODO: open to anyone and not rate limited, yet on the postgres
        # backend each call counts every segment and vector row.
        return {
            "status": "ok",
            "version": __version__,
            "segments": services.store.count(),
            "vectors": services.store.vector_count(),
            "books": len(services.catalog),
            "answer_provider": services.pipeline.provider_name,
            "embeddings": services.embeddings.name,
            # The latest `embed` or ingest embedding run, or None.
            "embedding": read_status(services.settings.data_dir),
            # Which serving process answered, and the index version it reads:
            # with several workers each one refreshes on its own.
            "process": os.getpid(),
            "index_versions": services.store.versions(),
        }

    @app.post("/chat", response_model=ChatResponse, responses={429: {}})
    def chat(
        body: ChatRequest,
        services: ServicesDep,
        identity: IdentityDep,
        accounts: AccountsDep,
    ) -> ChatResponse:
        """Answer a question and return the whole answer as JSON."""
        # TODO: the shutdown grace period does not stop this route, so an
        # answer still running is cancelled only by uvicorn's timeout.
        sources: list[dict[str, Any]] = []
        verification: dict[str, Any] = {}
        filters = resolve_filters(services, body.books, body.categories)
        reserve_question(accounts, identity.user.id)
        for event in services.pipeline.run(body.question, filters):
            if isinstance(event, SourcesEvent):
                sources = event.sources
            elif isinstance(event, VerificationEvent):
                verification = event.report
            elif isinstance(event, ErrorEvent):
                raise HTTPException(status_code=502, detail=event.message)
            elif isinstance(event, DoneEvent):
                return ChatResponse(
                    answer=event.answer,
                    mode=event.mode,
                    provider=event.provider,
                    sources=sources,
                    verification=verification,
                    refs=event.refs,
                    timings=event.timings,
                    usage=event.usage,
                )
        raise HTTPException(
            status_code=500, detail="The answer ended without a result."
        )

    @app.post(
        "/chat/stream",
        response_class=EventSourceResponse,
        responses={200: {"content": {"text/event-stream": {}}}, 429: {}},
    )
    async def chat_stream(
        body: ChatRequest,
        services: ServicesDep,
        identity: IdentityDep,
        accounts: AccountsDep,
    ) -> EventSourceResponse:
        """Stream the answer as server-sent events (sources, tokens, verification)."""
        filters = resolve_filters(services, body.books, body.categories)
        await run_in_threadpool(reserve_question, accounts, identity.user.id)
        cancel = threading.Event()
        events: Iterator[Event] = services.pipeline.run(body.question, filters, cancel)

        async def messages() -> AsyncIterator[dict[str, str]]:
            async for event in pump(events, cancel, app.state.drain):
                yield encode_event(event)

        return EventSourceResponse(
            messages(),
            ping=app.state.settings.keepalive_seconds,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/calendar/parashah", dependencies=SIGNED_IN)
    def parashah(
        request: Request,
        day: Annotated[
            date | None,
            Query(alias="date", description="any day of the week (default: today)"),
        ] = None,
        diaspora: Annotated[
            bool | None,
            Query(description="diaspora calendar (default: the setting)"),
        ] = None,
    ) -> dict[str, Any]:
        """This week's Torah portion, its refs, and three questions about it."""
        refresh_library(request.app)
        calendar: PortionCalendar = request.app.state.calendar
        if diaspora is None:
            diaspora = request.app.state.settings.calendar_diaspora
        try:
            return calendar.week(day or date.today(), diaspora)
        except CalendarUnavailable as error:
            raise HTTPException(status_code=503, detail=str(error)) from error
        except ValueError as error:
            raise HTTPException(status_code=422, detail=str(error)) from error
        except OverflowError as error:
            # The coming Shabbat of a day near 9999-12-31 is past date.max.
            raise HTTPException(
                status_code=422,
                detail=f"date {day} is too late: the calendar ends in year 9999.",
            ) from error

    @app.get("/search", response_model=SearchResponse, dependencies=SIGNED_IN)
    def search(
        services: ServicesDep,
        q: Annotated[str, Query(min_length=1, max_length=2000)],
        book: Annotated[list[str] | None, Query()] = None,
        category: Annotated[list[str] | None, Query()] = None,
    ) -> SearchResponse:
        """Return ranked passages for a query without writing an answer."""
        if not q.strip():
            raise HTTPException(status_code=422, detail="q must not be blank")
        try:
            check_text(q, "q")
        except ValueError as error:
            raise HTTPException(status_code=422, detail=str(error)) from error
        if len(book or []) + len(category or []) > MAX_FILTERS:
            raise HTTPException(
                status_code=422, detail=f"at most {MAX_FILTERS} filters are allowed"
            )
        filters = resolve_filters(services, book or [], category or [])
        result = services.retriever.retrieve(q.strip(), filters)
        return SearchResponse(
            query=q,
            mode=result.mode,
            message=result.message,
            results=[
                source_payload(n, p) for n, p in enumerate(result.passages, start=1)
            ],
            timings=result.timings,
        )

    @app.get("/texts/{ref:path}", response_model=TextResponse, dependencies=SIGNED_IN)
    def text(
        ref: str,
        services: ServicesDep,
        context: Annotated[int, Query(ge=0, le=20)] = 2,
        section: Annotated[
            bool,
            Query(description="return the whole containing section (ignores context)"),
        ] = False,
    ) -> TextResponse:
        """Return the Hebrew and English of a ref with neighbouring segments.

        With ``section=true`` the response contains the whole section that
        contains the ref instead (its chapter, daf side or comment level):
        ``segments`` lists the section in order, ``highlight`` names the
        segments the ref covers, and ``before`` and ``after`` are empty.
        """
        try:
            parsed = services.catalog.parse(ref)
        except RefError as error:
            raise HTTPException(status_code=404, detail=str(error)) from error
        if section:
            return _section_text(services, parsed)
        # TODO: a ref longer than MAX_LOOKUP_SEGMENTS is cut without saying so.
        records = services.retriever.lookup(parsed)
        if not records:
            raise HTTPException(
                status_code=404, detail=f"{parsed.normal()} has no text in the library."
            )
        before, _ = services.store.neighbours(records[0], context, 0)
        _, after = services.store.neighbours(records[-1], 0, context)
        book = services.catalog.books[parsed.book]
        return TextResponse(
            ref=parsed.normal(),
            he_ref=parsed.hebrew(book.he_title),
            book=book.title,
            categories=book.categories,
            segments=[_segment(services, r) for r in records],
            before=[_segment(services, r) for r in before],
            after=[_segment(services, r) for r in after],
            related=_related(services, parsed.normal()),
        )
