"""Local HTTP servers that speak the Gemini and OpenAI embedding wire formats.

The real ``google-genai`` and ``openai`` clients are pointed at these servers through
their base URL. Each vector is derived from its text, so a test can check that rows
come back in input order, and its norm is not 1, so a test can check normalisation.
Everything listens on 127.0.0.1 on a random port.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


def text_vector(text: str, dimension: int) -> list[float]:
    """Return a deterministic vector for ``text`` with a norm well above 1."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    return [float(x) for x in rng.normal(size=dimension) * 5.0]


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class EmbeddingScript:
    """What the fake server sends back; tests change it before a request."""

    # HTTP statuses returned, one per request, before the normal answer.
    failures: list[int] = field(default_factory=list)
    # Requests served normally before ``failures`` apply.
    succeed_first: int = 0
    # Retry-After header value sent with every failure, when set.
    retry_after: str | None = None
    # Seconds to wait before responding, one per request, to cause timeouts.
    stalls: list[float] = field(default_factory=list)
    # Overrides the vector length, to test a dimension mismatch.
    dimension: int | None = None
    # Drops the last vector, to test a count mismatch.
    drop_last: bool = False
    # Returns data in reverse order (with correct indexes), OpenAI only.
    reverse_order: bool = False
    # Sends float lists even when base64 is requested, as some servers do.
    ignore_encoding_format: bool = False
    # Vector length for OpenAI requests that do not send ``dimensions``.
    default_dimension: int = 8
    # Puts a NaN into the first vector of every answer, as a broken model does.
    nan_vectors: bool = False


class FakeEmbeddingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.script = EmbeddingScript()
        self.requests: list[RecordedRequest] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _BaseHandler(BaseHTTPRequestHandler):
    server: FakeEmbeddingServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _record(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length", "0"))
        request = RecordedRequest(
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=json.loads(self.rfile.read(length) if length else b"{}"),
        )
        self.server.requests.append(request)
        return request

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status >= 400 and self.server.script.retry_after is not None:
                self.send_header("Retry-After", self.server.script.retry_after)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up waiting (a stalled request timed out).
            pass

    def _next_failure(self) -> int | None:
        """Stall if scripted, then return the scripted failure status, if any."""
        script = self.server.script
        if script.stalls:
            time.sleep(script.stalls.pop(0))
        if script.succeed_first > 0:
            script.succeed_first -= 1
            return None
        return script.failures.pop(0) if script.failures else None

    def _vectors(self, texts: list[str], dimension: int) -> list[list[float]]:
        script = self.server.script
        size = script.dimension or dimension
        vectors = [text_vector(text, size) for text in texts]
        if script.nan_vectors and vectors:
            vectors[0][0] = float("nan")
        return vectors[:-1] if script.drop_last else vectors


class GeminiHandler(_BaseHandler):
    """Serves ``/{version}/models/{model}:batchEmbedContents``."""

    PATH = re.compile(r"^/v1(beta)?/models/(?P<model>[^:/]+):batchEmbedContents$")

    def do_POST(self) -> None:
        request = self._record()
        status = self._next_failure()
        if status is not None:
            self._send_json(
                status,
                {"error": {"code": status, "message": "fake failure", "status": "X"}},
            )
            return
        if self.PATH.match(self.path) is None:
            self._send_json(404, {"error": {"code": 404, "message": self.path}})
            return
        items = request.body["requests"]
        texts = [item["content"]["parts"][0]["text"] for item in items]
        dimension = items[0].get("outputDimensionality", 3072)
        vectors = self._vectors(texts, dimension)
        self._send_json(200, {"embeddings": [{"values": v} for v in vectors]})


class OpenAIHandler(_BaseHandler):
    """Serves ``/v1/embeddings`` in float or base64 encoding."""

    def do_POST(self) -> None:
        request = self._record()
        script = self.server.script
        status = self._next_failure()
        if status is not None:
            self._send_json(
                status, {"error": {"message": "fake failure", "type": "server_error"}}
            )
            return
        if self.path != "/v1/embeddings":
            self._send_json(404, {"error": {"message": f"unexpected {self.path}"}})
            return
        texts = request.body["input"]
        dimension = request.body.get("dimensions", script.default_dimension)
        as_base64 = (
            request.body.get("encoding_format") == "base64"
            and not script.ignore_encoding_format
        )
        data = []
        for index, vector in enumerate(self._vectors(texts, dimension)):
            embedding: Any = vector
            if as_base64:
                raw = np.asarray(vector, dtype=np.float32).tobytes()
                embedding = base64.b64encode(raw).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        if script.reverse_order:
            data.reverse()
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": request.body["model"],
                "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
            },
        )


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[FakeEmbeddingServer]:
    """Run a server in a thread for the duration of a fixture."""
    server = FakeEmbeddingServer(handler)
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
