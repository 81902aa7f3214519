"""ASGI middleware: request ids, a span and metrics for every HTTP request."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from opentelemetry import propagate, trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from torah_study.observability import logs, metrics, tracing

REQUEST_ID_HEADER = b"x-request-id"
# An incoming request id is kept when it is a short token of URL-safe
# characters (a UUID, a proxy's id); anything else is replaced.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
# The route label of requests that matched no route, so that probes of
# random paths cannot create new label values.
UNMATCHED = "<unmatched>"


def incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """Return the client's X-Request-ID when it is sane, else a new id."""
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """Return the path template of the route that served ``scope``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path or "/"
    return UNMATCHED


class ObservabilityMiddleware:
    """Sets the request id, spans the request, counts and times it.

    The id comes from the X-Request-ID header when it is sane, or is new,
    and is sent back in the response's X-Request-ID header. A response of
    type text/event-stream counts as an active stream until its body ends.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        request_id = incoming_request_id(headers)
        method: str = scope.get("method", "GET")
        id_token = logs.request_id.set(request_id)
        conversation_token = logs.conversation_id.set(None)
        started = time.perf_counter()
        status = 500
        streaming = False

        async def observed_send(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = _with_request_id(message, request_id)
                streaming = _is_event_stream(message)
                if streaming:
                    metrics.ACTIVE_STREAMS.inc()
                # The access log line is written during this send.
                conversation = scope.get("path_params", {}).get("conversation_id")
                if isinstance(conversation, str):
                    logs.conversation_id.set(conversation)
            await send(message)

        span_context = _request_span(scope, method, request_id)
        try:
            with span_context as span:
                try:
                    await self.app(scope, receive, observed_send)
                finally:
                    route = route_template(scope)
                    if span.is_recording():
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                        span.set_attribute("http.response.status_code", status)
                        if status >= 500:
                            span.set_status(trace.StatusCode.ERROR)
        finally:
            if streaming:
                metrics.ACTIVE_STREAMS.dec()
            labels = (method, route_template(scope), str(status))
            metrics.HTTP_REQUESTS.labels(*labels).inc()
            metrics.HTTP_DURATION.labels(*labels).observe(time.perf_counter() - started)
            logs.conversation_id.reset(conversation_token)
            logs.request_id.reset(id_token)


def _request_span(scope: Scope, method: str, request_id: str) -> Any:
    """Return a context manager of the request's server span (no-op while off).

    A W3C traceparent header from the client makes the span its child.
    """
    tracer = tracing.tracer()
    if tracer is None:
        return trace.use_span(trace.INVALID_SPAN)
    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope.get("headers") or []
    }
    return tracer.start_as_current_span(
        method,
        context=propagate.extract(carrier),
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": method, "request_id": request_id},
    )


def _with_request_id(message: Message, request_id: str) -> Message:
    headers = [
        (name, value)
        for name, value in message.get("headers", [])
        if name.lower() != REQUEST_ID_HEADER
    ]
    headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
    return {**message, "headers": headers}


def _is_event_stream(message: Message) -> bool:
    for name, value in message.get("headers", []):
        if name.lower() == b"content-type":
            return bool(value.startswith(b"text/event-stream"))
    return False
