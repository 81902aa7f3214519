"""A local HTTP server that misbehaves on purpose, for provider fault tests.

Each request takes the next Fault of ``FaultServer.script``; when the script
is used up, ``FaultServer.default`` builds the answer from the request. A
Fault can wait, send any status, headers and body, stream chunks with chunked
transfer encoding, or close the connection early, so the real ``openai``,
``google-genai`` and ``cohere`` clients meet each fault at their HTTP
boundary. Everything listens on 127.0.0.1 on a random port.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    """What the server does with one request, in order: wait, then respond.

    ``disconnect`` closes the connection without a response. Otherwise the
    server sends ``status`` and ``headers``, then either ``body`` whole or
    ``chunks`` one by one (``chunk_delay`` seconds apart). With ``drop_after``
    it closes the connection after that many chunks, without the final empty
    chunk, as a connection lost mid-stream looks to the client.
    """

    delay: float = 0.0
    disconnect: bool = False
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None
    chunk_delay: float = 0.0
    drop_after: int | None = None


@dataclass
class RecordedRequest:
    path: str
    body: Any


def json_fault(status: int, payload: Any, **headers: str) -> Fault:
    return Fault(
        status=status,
        headers={"Content-Type": "application/json", **headers},
        body=json.dumps(payload).encode(),
    )


def sse_fault(events: Sequence[str], drop_after: int | None = None) -> Fault:
    """Stream ``events`` as server-sent events, one chunk each."""
    return Fault(
        headers={"Content-Type": "text/event-stream"},
        chunks=[f"data: {event}\n\n".encode() for event in events],
        drop_after=drop_after,
    )


def openai_events(pieces: Sequence[str], model: str = "local-model") -> list[str]:
    """Return the SSE data of a chat completion stream that sends ``pieces``."""

    def chunk(delta: dict[str, Any], finish: str | None) -> str:
        return json.dumps(
            {
                "id": "chatcmpl-fault",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    return [
        chunk({"role": "assistant", "content": ""}, None),
        *(chunk({"content": piece}, None) for piece in pieces),
        chunk({}, "stop"),
        "[DONE]",
    ]


def gemini_events(pieces: Sequence[str]) -> list[str]:
    """Return the SSE data of a streamGenerateContent answer that sends ``pieces``."""
    events = [
        json.dumps(
            {"candidates": [{"content": {"parts": [{"text": p}], "role": "model"}}]}
        )
        for p in pieces
    ]
    events.append(
        json.dumps(
            {
                "candidates": [
                    {
                        "content": {"parts": [{"text": ""}], "role": "model"},
                        "finishReason": "STOP",
                    }
                ]
            }
        )
    )
    return events


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    # Do not wait for handlers still sleeping in a delay when the test ends.
    block_on_close = False

    def __init__(self, default: Callable[[RecordedRequest], Fault]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.default = default
        self.script: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def next_fault(self, request: RecordedRequest) -> Fault:
        with self._lock:
            self.requests.append(request)
            if self.script:
                return self.script.pop(0)
        return self.default(request)


class _Handler(BaseHTTPRequestHandler):
    server: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        fault = self.server.next_fault(RecordedRequest(self.path, body))
        # The client may give up first (a timeout) and close the connection.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._respond(fault)

    def _respond(self, fault: Fault) -> None:
        if fault.delay:
            time.sleep(fault.delay)
        if fault.disconnect:
            self.close_connection = True
            return
        self.send_response(fault.status)
        for name, value in fault.headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.close_connection = True
        if fault.chunks is None:
            self.send_header("Content-Length", str(len(fault.body)))
            self.end_headers()
            self.wfile.write(fault.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for index, chunk in enumerate(fault.chunks):
            if fault.drop_after is not None and index == fault.drop_after:
                return
            if fault.chunk_delay and index:
                time.sleep(fault.chunk_delay)
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        if fault.drop_after is None:
            self.wfile.write(b"0\r\n\r\n")


@contextmanager
def fault_server(default: Callable[[RecordedRequest], Fault]) -> Iterator[FaultServer]:
    """Run a FaultServer in a thread for the duration of the block."""
    server = FaultServer(default)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
