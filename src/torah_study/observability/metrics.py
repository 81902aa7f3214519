"""Prometheus metrics of requests, answers and answer models.

The metrics live in prometheus_client's default registry. With several
worker processes (``serve --workers N``) each process writes its values to
files in ``PROMETHEUS_MULTIPROC_DIR`` and ``render`` merges them, so any
worker's ``/metrics`` shows the whole server. prometheus_client chooses
between the two modes when it is first imported, so that variable must be
set before the process imports this module.

Labels carry route templates, status codes, stage names, answer modes,
provider names and exception class names, never question text or user ids.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. An SSE request lasts as long as its answer streams, so the HTTP
# buckets reach two minutes.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
STAGE_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
)  # fmt: skip

HTTP_REQUESTS = Counter(
    "torah_study_http_requests_total",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "torah_study_http_request_duration_seconds",
    "Time from request to the end of the response body (a whole SSE stream).",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)
ACTIVE_STREAMS = Gauge(
    "torah_study_sse_streams_active",
    "Server-sent event responses being streamed now.",
    multiprocess_mode="livesum",
)
STAGE_DURATION = Histogram(
    "torah_study_stage_duration_seconds",
    "Seconds one answer spent in a pipeline stage; see STAGE_TIMINGS.",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
FIRST_TOKEN = Histogram(
    "torah_study_first_token_seconds",
    "Seconds from the question to the first shown answer text.",
    buckets=STAGE_BUCKETS,
)
ANSWER_DURATION = Histogram(
    "torah_study_answer_duration_seconds",
    "Seconds from the question to the end of its answer.",
    buckets=STAGE_BUCKETS,
)
ANSWERS = Counter(
    "torah_study_answers_total",
    "Finished answers by retrieval mode and the provider that wrote them.",
    ["mode", "provider"],
)
ABSTENTIONS = Counter(
    "torah_study_abstentions_total",
    "Answers that abstained because no passage cleared the gate or the named "
    "work is not in the library (mode abstain).",
)
ANSWER_ERRORS = Counter(
    "torah_study_answer_errors_total",
    "Answers that ended with an error event, by its code.",
    ["code"],
)
VERIFICATION_FAILURES = Counter(
    "torah_study_verification_failures_total",
    "Answers whose verification did not pass, by cause: removed (sentences "
    "were removed) or fallback (a sources-only answer replaced the model's).",
    ["cause"],
)
REMOVED_SENTENCES = Counter(
    "torah_study_verification_removed_sentences_total",
    "Model sentences removed by verification.",
)
TOKENS = Counter(
    "torah_study_llm_tokens_total",
    "Tokens reported by the answer model, by provider and kind (prompt or completion).",
    ["provider", "kind"],
)
# TODO: failures of the other model calls (follow-up rewriting, the retry's
# hypothetical passage, the Cohere reranker) are logged but not counted.
PROVIDER_ERRORS = Counter(
    "torah_study_provider_errors_total",
    "Answer model failures by provider and the exception class at their root.",
    ["provider", "type"],
)

# Metric stage label -> the timing keys (AnswerPipeline and Retriever) summed
# into it. A retried search adds its "retry_" timings to the same stage.
STAGE_TIMINGS: Mapping[str, tuple[str, ...]] = {
    "lookup": ("lookup",),
    "rewrite": ("reformulate",),
    "dense": ("dense", "retry_dense"),
    "keyword": ("keyword", "retry_keyword"),
    "fuse": ("fuse", "retry_fuse"),
    "rerank": ("rerank", "retry_rerank"),
    "generate": ("generate",),
    "verify": ("verify",),
}


def observe_answer(
    mode: str,
    provider: str,
    timings: Mapping[str, float],
    usage: Mapping[str, int],
    verification: Mapping[str, Any],
) -> None:
    """Record one finished answer: its stage times, tokens and verification."""
    for stage, keys in STAGE_TIMINGS.items():
        present = [timings[key] for key in keys if key in timings]
        seconds = sum(present)
        # A store that fuses in its own query runs the keyword legs inside
        # "fuse" and reports keyword as 0.0: that stage did not run.
        if present and seconds > 0.0:
            STAGE_DURATION.labels(stage).observe(seconds)
    if "first_token" in timings:
        FIRST_TOKEN.observe(timings["first_token"])
    if "total" in timings:
        ANSWER_DURATION.observe(timings["total"])
    ANSWERS.labels(mode, provider).inc()
    if mode == "abstain":
        ABSTENTIONS.inc()
    for kind in ("prompt", "completion"):
        count = usage.get(f"{kind}_tokens")
        if count:
            TOKENS.labels(provider, kind).inc(count)
    removed = verification.get("removed") or []
    if removed:
        VERIFICATION_FAILURES.labels("removed").inc()
        REMOVED_SENTENCES.inc(len(removed))
    if verification.get("fallback"):
        VERIFICATION_FAILURES.labels("fallback").inc()


def observe_answer_error(code: str) -> None:
    ANSWER_ERRORS.labels(code).inc()


def root_cause_name(error: BaseException) -> str:
    """Return the class name of the last exception in the ``__cause__`` chain."""
    seen = {id(error)}
    while error.__cause__ is not None and id(error.__cause__) not in seen:
        error = error.__cause__
        seen.add(id(error))
    return type(error).__name__


def observe_provider_error(provider: str, error: BaseException) -> None:
    PROVIDER_ERRORS.labels(provider, root_cause_name(error)).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


def render() -> tuple[bytes, str]:
    """Return the exposition text of every metric, and its content type.

    In multiprocess mode a fresh registry collects every process's files.
    """
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop the live gauges of a stopped worker process from the shared files."""
    if multiprocess_dir() is not None:
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
