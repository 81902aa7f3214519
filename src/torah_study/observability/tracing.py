"""OpenTelemetry spans for requests and pipeline stages, exported over OTLP.

Tracing is off unless an OTLP endpoint is configured (``otlp_endpoint``, or
the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). While it is off, ``stage`` only
measures time: it creates no span and touches no context.

Spans carry counts, modes, scores and provider names. Question text is added
only when ``trace_question_text`` is on; secrets and user ids never are.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from torah_study.config import Settings

logger = logging.getLogger(__name__)

TRACER_NAME = "torah_study"
SERVICE_NAME = "torah-study"
TRACES_PATH = "/v1/traces"

AttributeValue = str | bool | int | float

# The tracer of the installed provider; None while tracing is off.
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
# Whether spans may carry the learner's question.
_question_text = False


def enabled() -> bool:
    return _tracer is not None


def tracer() -> trace.Tracer | None:
    return _tracer


def include_question_text() -> bool:
    return _question_text


def use_provider(provider: TracerProvider | None, question_text: bool = False) -> None:
    """Send spans to ``provider``, or turn tracing off with None.

    The provider is not made the global one, so a test can install its own
    and remove it again.
    """
    global _tracer, _provider, _question_text
    _provider = provider
    _tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None
    _question_text = question_text


def otlp_traces_url(settings: Settings) -> str | None:
    """Return the OTLP/HTTP traces URL to export to, or None when none is set.

    ``otlp_endpoint`` is a base URL such as ``http://collector:4318``; the
    traces path is added unless it is already there. Without it, the
    standard environment variables are read.
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    configured = settings.otlp_endpoint
    if configured:
        base = configured.rstrip("/")
        return base if base.endswith(TRACES_PATH) else base + TRACES_PATH
    specific = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if specific:
        return specific
    general = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if general:
        return general.rstrip("/") + TRACES_PATH
    return None


def configure_tracing(settings: Settings) -> TracerProvider | None:
    """Start exporting spans over OTLP/HTTP when an endpoint is configured.

    Returns the new provider, which the caller shuts down on exit, or None
    when no endpoint is set or a provider is already installed (by an earlier
    app in this process, or a test).
    """
    url = otlp_traces_url(settings)
    if url is None or _provider is not None:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME, when set, names the service instead.
    attributes = (
        {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    )
    provider = TracerProvider(resource=Resource.create(attributes))
    # Headers (a collector's API key) come from OTEL_EXPORTER_OTLP_HEADERS.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    use_provider(provider, settings.trace_question_text)
    logger.info("Exporting traces to %s", url)
    return provider


def shutdown_tracing(provider: TracerProvider) -> None:
    """Send the spans still buffered and stop exporting."""
    provider.shutdown()
    if _provider is provider:
        use_provider(None)


@dataclass
class Stage:
    """A timed stage: its span (a no-op span while tracing is off) and duration."""

    span: trace.Span
    seconds: float = 0.0
    attributes: dict[str, AttributeValue] = field(default_factory=dict)

    def set(self, name: str, value: AttributeValue) -> None:
        if self.span.is_recording():
            self.span.set_attribute(name, value)


@contextmanager
def stage(
    name: str,
    timings: MutableMapping[str, float] | None = None,
    **attributes: AttributeValue,
) -> Iterator[Stage]:
    """Time a block as stage ``name`` and, while tracing is on, span it.

    The seconds are added to ``timings[name]`` when ``timings`` is given, so
    a stage entered several times accumulates. The span is the current one
    inside the block, so stages nest.
    """
    started = time.perf_counter()
    if _tracer is None:
        current = Stage(trace.INVALID_SPAN)
        try:
            yield current
        finally:
            _finish(current, name, timings, started)
        return
    with _tracer.start_as_current_span(name, attributes=attributes) as span:
        current = Stage(span)
        try:
            yield current
        finally:
            _finish(current, name, timings, started)


def _finish(
    current: Stage,
    name: str,
    timings: MutableMapping[str, float] | None,
    started: float,
) -> None:
    current.seconds = time.perf_counter() - started
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + current.seconds


def record_span(
    name: str, seconds: float, attributes: dict[str, Any] | None = None
) -> None:
    """Add a span of ``seconds`` that ends now, under the current span.

    For work done in pieces among other work, such as checking an answer
    sentence by sentence while it streams: the span's length is the sum of
    the pieces, not the time they were spread over.
    """
    if _tracer is None:
        return
    end = time.time_ns()
    span = _tracer.start_span(
        name, start_time=end - int(seconds * 1e9), attributes=attributes
    )
    span.end(end_time=end)
