"""Logs, metrics and traces of a real uvicorn server answering real questions."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from servers import TEST_PASSWORD, TEST_SECRET, accounts_settings, live_server
from torah_study.answer.llm.base import ChatMessage, ProviderError, Usage
from torah_study.answer.pipeline import AnswerPipeline
from torah_study.api.app import create_app
from torah_study.config import Settings
from torah_study.observability import tracing
from torah_study.observability.logs import configure_logging
from torah_study.service import Services

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

QUESTION = "Where does the Torah say to love your neighbor as yourself?"
CITED = "Leviticus 19:18 commands to love your neighbor as yourself [1]."
PROMPT_TOKENS = 120
COMPLETION_TOKENS = 14
METRICS_TOKEN = "metrics-token-for-the-scraper-0123"


class StubModel:
    """An answer model whose behaviour a test chooses: cite, fail or wait."""

    name = "stub:model"

    def __init__(self) -> None:
        self.behaviour = "cite"
        self.release = threading.Event()

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str | Usage]:
        if self.behaviour == "fail":
            try:
                raise ConnectionError("connection reset by the stub")
            except ConnectionError as error:
                raise ProviderError("The stub model failed.") from error
        if self.behaviour == "wait":
            self.release.wait(30)
        yield CITED
        yield Usage(PROMPT_TOKENS, COMPLETION_TOKENS)


@pytest.fixture(scope="module")
def model() -> StubModel:
    return StubModel()


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans of every request of this module, kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    try:
        yield exporter
    finally:
        tracing.use_provider(None)
        provider.shutdown()


@pytest.fixture(scope="module")
def log_output() -> Iterator[io.StringIO]:
    """Every log line of the module at DEBUG level, as JSON."""
    output = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("json", logging.DEBUG, stream=output)
    try:
        yield output
    finally:
        assert handler is not None
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture(scope="module")
def url(
    services: Services,
    library_settings: Settings,
    model: StubModel,
    spans: InMemorySpanExporter,
    log_output: io.StringIO,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A server whose answers come from ``model``, with a metrics token."""
    database = tmp_path_factory.mktemp("accounts") / "torah-study.db"
    settings = accounts_settings(
        library_settings,
        f"sqlite:///{database}",
        metrics_token=SecretStr(METRICS_TOKEN),
    )
    pipeline = AnswerPipeline(services.retriever, services.catalog, model)
    app = create_app(settings, services=replace(services, pipeline=pipeline))
    with live_server(app, log_config=None, log_level="debug") as base:
        yield base


def _sign_in(client: httpx.Client) -> dict[str, str]:
    email = f"learner-{uuid.uuid4().hex[:10]}@example.org"
    response = client.post(
        "/auth/register", json={"email": email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _metrics(client: httpx.Client) -> Samples:
    response = client.get(
        "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_request_id_is_echoed_or_generated(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        given = client.get("/health", headers={"X-Request-ID": "proxy-id.42"})
        made = client.get("/health")
        unsafe = client.get("/health", headers={"X-Request-ID": "bad id\twith tab"})
    assert given.headers["x-request-id"] == "proxy-id.42"
    assert len(made.headers["x-request-id"]) == 32
    assert unsafe.headers["x-request-id"] != "bad id\twith tab"
    assert len(unsafe.headers["x-request-id"]) == 32


def test_metrics_need_the_token(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert missing.status_code == 401
    assert wrong.status_code == 401


def test_metrics_count_requests_by_route(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        headers = _sign_in(client)
        before = _metrics(client)
        text = client.get("/texts/Genesis 1:2", headers=headers)
        missing = client.get("/no/such/path")
        after = _metrics(client)
    assert text.status_code == 200
    assert missing.status_code == 404
    name = "torah_study_http_requests_total"
    route = {"method": "GET", "route": "/texts/{ref:path}", "status": "200"}
    assert _value(after, name, **route) - _value(before, name, **route) == 1
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert _value(after, name, **unmatched) >= 1
    labels = {value for _, pairs in after for _, value in pairs}
    assert not any("Genesis" in value for value in labels)
    assert not any("/no/such" in value for value in labels)
    duration = "torah_study_http_request_duration_seconds_count"
    assert _value(after, duration, **route) > _value(before, duration, **route)


def test_metrics_of_an_answer(url: str, model: StubModel) -> None:
    model.behaviour = "cite"
    with httpx.Client(base_url=url, timeout=60) as client:
        headers = _sign_in(client)
        before = _metrics(client)
        response = client.post("/chat", json={"question": QUESTION}, headers=headers)
        after = _metrics(client)
    assert response.status_code == 200, response.text
    body = response.json()
    timings = body["timings"]
    for key in ("dense", "keyword", "fuse", "rerank", "generate", "verify"):
        assert key in timings, key
    stages = "torah_study_stage_duration_seconds_count"
    for stage in ("dense", "keyword", "fuse", "rerank", "generate", "verify"):
        grown = _value(after, stages, stage=stage) - _value(before, stages, stage=stage)
        assert grown == 1, stage
    tokens = "torah_study_llm_tokens_total"
    provider = body["provider"]
    for kind, count in (("prompt", PROMPT_TOKENS), ("completion", COMPLETION_TOKENS)):
        grown = _value(after, tokens, provider=provider, kind=kind) - _value(
            before, tokens, provider=provider, kind=kind
        )
        assert grown == count, kind
    answers = "torah_study_answers_total"
    labels = {"mode": "search", "provider": provider}
    assert _value(after, answers, **labels) - _value(before, answers, **labels) == 1


def test_metrics_of_an_abstention(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        headers = _sign_in(client)
        before = _metrics(client)
        response = client.post(
            "/chat",
            json={"question": "What does the Zohar say about light?"},
            headers=headers,
        )
        after = _metrics(client)
    assert response.status_code == 200, response.text
    assert response.json()["mode"] == "abstain"
    name = "torah_study_abstentions_total"
    assert _value(after, name) - _value(before, name) == 1


def test_metrics_of_a_provider_error(url: str, model: StubModel) -> None:
    model.behaviour = "fail"
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            headers = _sign_in(client)
            before = _metrics(client)
            response = client.post(
                "/chat", json={"question": QUESTION}, headers=headers
            )
            after = _metrics(client)
    finally:
        model.behaviour = "cite"
    assert response.status_code == 502, response.text
    errors = "torah_study_provider_errors_total"
    labels = {"provider": "stub:model", "type": "ConnectionError"}
    assert _value(after, errors, **labels) - _value(before, errors, **labels) == 1
    failed = "torah_study_answer_errors_total"
    grown = _value(after, failed, code="answer_failed") - _value(
        before, failed, code="answer_failed"
    )
    assert grown == 1


def test_active_streams_gauge(url: str, model: StubModel) -> None:
    model.behaviour = "wait"
    model.release.clear()
    gauge = "torah_study_sse_streams_active"
    with httpx.Client(base_url=url, timeout=60) as client:
        headers = _sign_in(client)
        assert _value(_metrics(client), gauge) == 0
        done = threading.Event()

        def read_stream() -> None:
            with client.stream(
                "POST", "/chat/stream", json={"question": QUESTION}, headers=headers
            ) as response:
                for _ in response.iter_text():
                    pass
            done.set()

        reader = threading.Thread(target=read_stream, daemon=True)
        reader.start()
        try:
            deadline = time.time() + 30
            while _value(_metrics(client), gauge) < 1:
                assert time.time() < deadline, "the stream was never counted"
                time.sleep(0.05)
        finally:
            model.release.set()
            model.behaviour = "cite"
        assert done.wait(30)
        reader.join(5)
        deadline = time.time() + 10
        while _value(_metrics(client), gauge) != 0:
            assert time.time() < deadline, "the ended stream is still counted"
            time.sleep(0.05)


def _only(found: list[ReadableSpan], name: str) -> ReadableSpan:
    matching = [span for span in found if span.name == name]
    assert len(matching) == 1, [span.name for span in found]
    return matching[0]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def test_stage_spans_nest_under_the_request(
    url: str, model: StubModel, spans: InMemorySpanExporter
) -> None:
    model.behaviour = "cite"
    with httpx.Client(base_url=url, timeout=60) as client:
        headers = _sign_in(client)
        spans.clear()
        with client.stream(
            "POST", "/chat/stream", json={"question": QUESTION}, headers=headers
        ) as response:
            assert response.status_code == 200
            raw = "".join(response.iter_text())
    assert "event: done" in raw
    # The server span ends after the last byte is sent, so wait for it.
    deadline = time.time() + 10
    while not any(s.kind == SpanKind.SERVER for s in spans.get_finished_spans()):
        assert time.time() < deadline, "the request span never ended"
        time.sleep(0.05)
    found = list(spans.get_finished_spans())

    request = _only(found, "POST /chat/stream")
    assert request.kind == SpanKind.SERVER
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/chat/stream"
    assert request.attributes["http.response.status_code"] == 200
    answer = _only(found, "answer")
    retrieve = _only(found, "retrieve")
    generate = _only(found, "generate")
    verify = _only(found, "verify")
    assert _parent_id(answer) == _span_id(request)
    assert _parent_id(retrieve) == _span_id(answer)
    assert _parent_id(generate) == _span_id(answer)
    assert _parent_id(verify) == _span_id(generate)
    for name in ("dense", "keyword", "fuse", "rerank"):
        stage_spans = [span for span in found if span.name == name]
        assert stage_spans, name
        for span in stage_spans:
            assert _parent_id(span) == _span_id(retrieve), name
    assert request.context is not None
    trace_ids = {span.context.trace_id for span in found if span.context}
    assert trace_ids == {request.context.trace_id}

    assert retrieve.attributes is not None
    assert retrieve.attributes["mode"] == "search"
    assert generate.attributes is not None
    assert generate.attributes["provider"] == "stub:model"
    assert generate.attributes["completion_tokens"] == COMPLETION_TOKENS
    # Question text stays out of spans unless trace_question_text is on.
    for span in found:
        for value in (span.attributes or {}).values():
            assert "neighbor" not in str(value), span.name


def test_secrets_never_reach_the_logs(url: str, log_output: io.StringIO) -> None:
    email = f"learner-{uuid.uuid4().hex[:10]}@example.org"
    with httpx.Client(base_url=url, timeout=60) as client:
        registered = client.post(
            "/auth/register", json={"email": email, "password": TEST_PASSWORD}
        )
        assert registered.status_code == 201
        wrong = client.post(
            "/auth/login", json={"email": email, "password": "not the password"}
        )
        assert wrong.status_code == 401
        login = client.post(
            "/auth/login", json={"email": email, "password": TEST_PASSWORD}
        )
        assert login.status_code == 200
        tokens = login.json()
        access, refresh = tokens["access_token"], tokens["refresh_token"]
        headers = {"Authorization": f"Bearer {access}", "X-Request-ID": "secrets-1"}
        chat = client.post("/chat", json={"question": QUESTION}, headers=headers)
        assert chat.status_code == 200
        conversation = client.post("/conversations", json={}, headers=headers)
        assert conversation.status_code == 201
        conversation_id = conversation.json()["id"]
        with client.stream(
            "POST",
            f"/conversations/{conversation_id}/messages",
            params={"stream": "true"},
            json={"content": QUESTION},
            headers=headers,
        ) as response:
            assert response.status_code == 200
            "".join(response.iter_text())
        # A token in a query string reaches the access log, masked.
        leaked = client.get(f"/texts/Genesis 1:1?token={access}", headers=headers)
        assert leaked.status_code == 200
        refreshed = client.post("/auth/refresh", json={"refresh_token": refresh})
        assert refreshed.status_code == 200
    time.sleep(0.2)
    output = log_output.getvalue()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]

    # The capture works: the requests above were logged with their ids.
    ours = [line for line in lines if line.get("request_id") == "secrets-1"]
    assert ours
    assert any(line.get("http", {}).get("status") == 200 for line in ours)
    assert any(line.get("conversation_id") == conversation_id for line in lines)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()

    for secret in (
        TEST_PASSWORD,
        access,
        refresh,
        refreshed.json()["access_token"],
        refreshed.json()["refresh_token"],
        TEST_SECRET,
        METRICS_TOKEN,
    ):
        assert secret not in output
