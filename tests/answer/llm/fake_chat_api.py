"""Local HTTP servers that speak the Gemini and OpenAI streaming chat wire formats.

The real ``google-genai`` and ``openai`` clients are pointed at these servers through
their base URL, so the tests cover request encoding, SSE parsing and error mapping
without a paid API. Everything listens on 127.0.0.1 on a random port.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ChatScript:
    """What the fake server sends back; tests change it before a request."""

    pieces: list[str] = field(default_factory=lambda: ["Hello", ", ", "world", "!"])
    # HTTP statuses returned, one per request, before the normal answer.
    failures: list[int] = field(default_factory=list)
    # When set, the server stops after the first piece until the event is set.
    hold_after_first: threading.Event | None = None
    finish_reason: str = "STOP"
    # The OpenAI stream's last finish_reason; None ends the stream without one,
    # as a connection closed early does.
    openai_finish: str | None = "stop"


class FakeChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.script = ChatScript()
        self.requests: list[RecordedRequest] = []
        self.stream_finished = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _BaseHandler(BaseHTTPRequestHandler):
    server: FakeChatServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _record(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length) if length else b"{}"
        request = RecordedRequest(
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=json.loads(raw),
        )
        self.server.requests.append(request)
        return request

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()

    def _send_event(self, payload: str) -> None:
        self.wfile.write(f"data: {payload}\r\n\r\n".encode())
        self.wfile.flush()

    def _stream_pieces(self, encode: Any) -> None:
        """Send each piece as one SSE event, pausing after the first if asked."""
        script = self.server.script
        for index, piece in enumerate(script.pieces):
            self._send_event(json.dumps(encode(piece)))
            if index == 0 and script.hold_after_first is not None:
                script.hold_after_first.wait(timeout=10)


class GeminiHandler(_BaseHandler):
    """Serves ``/{version}/models/{model}:streamGenerateContent?alt=sse``."""

    PATH = re.compile(r"^/v1(beta)?/models/(?P<model>[^:/]+):streamGenerateContent")

    def do_POST(self) -> None:
        self._record()
        script = self.server.script
        if script.failures:
            status = script.failures.pop(0)
            self._send_json(
                status,
                {"error": {"code": status, "message": "fake failure", "status": "X"}},
            )
            return
        match = self.PATH.match(self.path)
        if match is None or "alt=sse" not in self.path:
            self._send_json(404, {"error": {"code": 404, "message": self.path}})
            return
        model = match.group("model")
        self._start_sse()
        self._stream_pieces(
            lambda piece: {
                "candidates": [
                    {
                        "content": {"parts": [{"text": piece}], "role": "model"},
                        "index": 0,
                    }
                ],
                "modelVersion": model,
            }
        )
        self._send_event(
            json.dumps(
                {
                    "candidates": [
                        {
                            "content": {"parts": [{"text": ""}], "role": "model"},
                            "finishReason": script.finish_reason,
                            "index": 0,
                        }
                    ],
                    "usageMetadata": {"promptTokenCount": 3},
                    "modelVersion": model,
                }
            )
        )
        self.server.stream_finished.set()


class OpenAIHandler(_BaseHandler):
    """Serves ``/v1/chat/completions`` with ``stream: true``."""

    def do_POST(self) -> None:
        request = self._record()
        script = self.server.script
        if script.failures:
            status = script.failures.pop(0)
            self._send_json(
                status, {"error": {"message": "fake failure", "type": "server_error"}}
            )
            return
        if (
            self.path != "/v1/chat/completions"
            or request.body.get("stream") is not True
        ):
            self._send_json(404, {"error": {"message": f"unexpected {self.path}"}})
            return
        model = request.body["model"]

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        self._start_sse()
        self._send_event(json.dumps(chunk({"role": "assistant", "content": ""}, None)))
        self._stream_pieces(lambda piece: chunk({"content": piece}, None))
        if self.server.script.openai_finish is not None:
            self._send_event(json.dumps(chunk({}, self.server.script.openai_finish)))
        # A usage chunk without choices, as OpenAI sends with include_usage.
        usage = chunk({}, None)
        usage["choices"] = []
        usage["usage"] = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        self._send_event(json.dumps(usage))
        self._send_event("[DONE]")
        self.server.stream_finished.set()


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[FakeChatServer]:
    """Run a server in a thread for the duration of a fixture."""
    server = FakeChatServer(handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        hold = server.script.hold_after_first
        if hold is not None:
            hold.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def text_pieces(pieces: Iterator[Any]) -> list[str]:
    """The text pieces of a model stream, without its token-count record."""
    return [piece for piece in pieces if isinstance(piece, str)]


def text_of(pieces: Iterator[Any]) -> str:
    return "".join(text_pieces(pieces))
