"""Log formats, secret masking, metrics files and OTLP export, without a library."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from torah_study.cli import main
from torah_study.config import Settings
from torah_study.observability import logs, metrics, tracing
from torah_study.observability.middleware import incoming_request_id

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def captured() -> Iterator[io.StringIO]:
    """JSON log lines of the test, at DEBUG level."""
    output = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure_logging("json", logging.DEBUG, stream=output)
    try:
        yield output
    finally:
        assert handler is not None
        root.removeHandler(handler)
        root.setLevel(level)


def _lines(output: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.getvalue().splitlines()]


def test_json_line_fields(captured: io.StringIO) -> None:
    request = logs.request_id.set("req-1")
    conversation = logs.conversation_id.set("conv-1")
    try:
        logging.getLogger("torah_study.test").warning("Loaded %d books", 3)
    finally:
        logs.conversation_id.reset(conversation)
        logs.request_id.reset(request)
    [line] = _lines(captured)
    assert line["level"] == "WARNING"
    assert line["logger"] == "torah_study.test"
    assert line["message"] == "Loaded 3 books"
    assert line["request_id"] == "req-1"
    assert line["conversation_id"] == "conv-1"
    assert line["time"].endswith("+00:00")


def test_json_line_without_ids(captured: io.StringIO) -> None:
    logging.getLogger("torah_study.test").warning("outside a request")
    [line] = _lines(captured)
    assert "request_id" not in line
    assert "conversation_id" not in line


def test_json_exception_has_traceback(captured: io.StringIO) -> None:
    try:
        raise ValueError("broken index")
    except ValueError:
        logging.getLogger("torah_study.test").exception("Search failed")
    [line] = _lines(captured)
    assert line["message"] == "Search failed"
    assert "Traceback" in line["exception"]
    assert "ValueError: broken index" in line["exception"]


@pytest.fixture()
def access_logger() -> Iterator[logging.Logger]:
    """uvicorn's access logger, passing records to the root logger.

    A logging configuration applied by another test can disable the logger,
    give it its own handler or stop its propagation.
    """
    logger = logging.getLogger("uvicorn.access")
    saved = (logger.handlers[:], logger.propagate, logger.disabled, logger.level)
    logger.handlers = []
    logger.propagate = True
    logger.disabled = False
    logger.setLevel(logging.NOTSET)
    try:
        yield logger
    finally:
        logger.handlers, logger.propagate, logger.disabled = saved[:3]
        logger.setLevel(saved[3])


def test_json_access_line_fields(
    captured: io.StringIO, access_logger: logging.Logger
) -> None:
    access_logger.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/texts/Genesis%201:1?token=abc.def",
        "1.1",
        200,
    )
    [line] = _lines(captured)
    assert line["http"]["method"] == "GET"
    assert line["http"]["status"] == 200
    assert line["http"]["path"] == "/texts/Genesis%201:1?token=[REDACTED]"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("postgresql://study:hunter2-long@db/torah", "hunter2-long"),
        ('{"password": "a long study password"}', "a long study password"),
        ("refresh_token=Zm9vYmFyYmF6", "Zm9vYmFyYmF6"),
        ("api_key=sk-1234567890", "sk-1234567890"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJhbGci"),
    ],
)
def test_redact_masks_credentials(text: str, secret: str) -> None:
    masked = logs.redact(text)
    assert "[REDACTED]" in masked
    assert secret not in masked


def test_redact_masks_known_secret() -> None:
    logs.add_secret("an-api-key-without-a-telltale-name")
    masked = logs.redact("provider said an-api-key-without-a-telltale-name is bad")
    assert masked == "provider said [REDACTED] is bad"


def test_redact_keeps_plain_text() -> None:
    text = "A basic question on Genesis 1:1 took 0.2 s for request 4f2a"
    assert logs.redact(text) == text


def test_text_format_masks_and_adds_request_id() -> None:
    output = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure_logging("text", logging.INFO, stream=output)
    request = logs.request_id.set("req-9")
    try:
        logging.getLogger("torah_study.test").info("sent Bearer sekrit-token-1")
    finally:
        logs.request_id.reset(request)
        assert handler is not None
        root.removeHandler(handler)
        root.setLevel(level)
    text = output.getvalue()
    assert "INFO torah_study.test: sent Bearer [REDACTED] [request_id=req-9]" in text
    assert "sekrit" not in text


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        (b"4f2a9c1e-0b7d-4c8e-9f00-1a2b3c4d5e6f", True),
        (b"proxy.id:7", True),
        (b"", False),
        (b"x" * 65, False),
        (b"<script>", False),
        (b"id with spaces", False),
    ],
)
def test_incoming_request_id(header: bytes, kept: bool) -> None:
    result = incoming_request_id([(b"x-request-id", header)])
    assert (result == header.decode()) is kept
    assert 1 <= len(result) <= 64


def test_log_format_of_serve() -> None:
    plain = Settings(_env_file=None)  # type: ignore[call-arg]
    production = Settings(_env_file=None, environment="production")  # type: ignore[call-arg]
    chosen = Settings(  # type: ignore[call-arg]
        _env_file=None, environment="production", log_format="text"
    )
    assert plain.resolved_log_format == "text"
    assert production.resolved_log_format == "json"
    assert chosen.resolved_log_format == "text"


def test_serve_routes_access_log_and_shares_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # serve writes these for its workers. Setting them first makes
    # monkeypatch restore their absence after the test.
    for name in (
        "TORAH_STUDY_DATA_DIR",
        "TORAH_STUDY_MIGRATE_ON_START",
        metrics.MULTIPROCESS_ENV,
    ):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    calls: list[dict[str, Any]] = []

    def run(*args: Any, **options: Any) -> None:
        folder = os.environ.get(metrics.MULTIPROCESS_ENV)
        calls.append({**options, "folder": folder})
        assert folder is not None and Path(folder).is_dir()

    monkeypatch.setattr(uvicorn, "run", run)
    (tmp_path / "catalog.json").write_text("[]", encoding="utf-8")
    assert main(["--data-dir", str(tmp_path), "serve", "--workers", "2"]) == 0
    [call] = calls
    assert call["log_config"] is None
    assert call["workers"] == 2
    assert not Path(call["folder"]).exists()
    assert metrics.MULTIPROCESS_ENV not in os.environ


def test_multiprocess_metrics_are_merged(tmp_path: Path) -> None:
    """Two processes write metric files; a third renders their sum."""
    script = (
        "import sys\n"
        "from torah_study.observability import metrics\n"
        "if sys.argv[1] == 'count':\n"
        "    metrics.ANSWERS.labels('search', 'stub').inc()\n"
        "    metrics.ACTIVE_STREAMS.inc()\n"
        "else:\n"
        "    sys.stdout.write(metrics.render()[0].decode())\n"
    )
    env = {
        **os.environ,
        metrics.MULTIPROCESS_ENV: str(tmp_path),
        "PYTHONPATH": str(REPO / "src"),
    }
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", script, "count"], env=env, check=True, timeout=60
        )
    rendered = subprocess.run(
        [sys.executable, "-c", script, "render"],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    counted = 'torah_study_answers_total{mode="search",provider="stub"} 2.0'
    assert counted in rendered
    # NOTE: livesum drops only the gauges of processes marked dead; these
    # ended without mark_process_dead, so their streams still count.
    assert "torah_study_sse_streams_active 2.0" in rendered


def test_stage_times_without_tracing() -> None:
    timings: dict[str, float] = {}
    with tracing.stage("rerank", timings) as first:
        first.set("candidates", 3)
    with tracing.stage("rerank", timings) as second:
        pass
    assert not first.span.is_recording()
    assert timings["rerank"] == pytest.approx(first.seconds + second.seconds)


class _Collector(BaseHTTPRequestHandler):
    """Records each POST as (path, content type, body)."""

    received: ClassVar[list[tuple[str, str, bytes]]] = []
    arrived = threading.Event()

    def do_POST(self) -> None:  # http.server calls this name
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.arrived.set()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_otlp_export_reaches_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    settings = Settings(_env_file=None, otlp_endpoint=base)  # type: ignore[call-arg]
    provider = tracing.configure_tracing(settings)
    try:
        assert provider is not None
        # The second stage opens inside the first, so it is its child.
        with (
            tracing.stage("retrieve", mode="search"),
            tracing.stage("rerank", candidates=12),
        ):
            pass
        assert provider.force_flush(10_000)
        assert _Collector.arrived.wait(10)
    finally:
        if provider is not None:
            tracing.shutdown_tracing(provider)
        server.shutdown()
        thread.join(5)
    assert not tracing.enabled()
    path, content_type, body = _Collector.received[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    names = {
        span.name
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    }
    assert names == {"retrieve", "rerank"}
    resource = request.resource_spans[0].resource
    service = {a.key: a.value.string_value for a in resource.attributes}
    assert service["service.name"] == "torah-study"


def test_tracing_stays_off_without_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert tracing.otlp_traces_url(settings) is None
    assert tracing.configure_tracing(settings) is None
    assert not tracing.enabled()


def test_otlp_url_from_standard_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert tracing.otlp_traces_url(settings) == "http://127.0.0.1:4318/v1/traces"
    given = Settings(  # type: ignore[call-arg]
        _env_file=None, otlp_endpoint="http://127.0.0.1:9/v1/traces"
    )
    assert tracing.otlp_traces_url(given) == "http://127.0.0.1:9/v1/traces"
