"""A local OpenAI-compatible chat server with scripted, slowly streamed answers.

The service's real OpenAI client is pointed at it, so the browser tests see
answers that stream word by word for as long as a test needs, cite the
sources they were given, and carry Markdown and hostile HTML.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Questions that contain this get a long answer, for stopping mid-stream.
LONG = "at length"
# Questions that contain this get an answer with markup that must stay text.
HOSTILE = "markup"
WORD_DELAY = 0.04
LONG_WORD_DELAY = 0.25


def source_number(prompt: str, ref: str) -> int:
    """The number the prompt gives the source ``ref``, or 1."""
    for line in prompt.splitlines():
        match = re.match(r"\[(\d+)\]\s*(.*)", line)
        if match and ref in match.group(2):
            return int(match.group(1))
    return 1


def answer_for(prompt: str) -> tuple[list[str], float]:
    """The words of the answer to the question in ``prompt`` and their delay."""
    first = source_number(prompt, "Leviticus 19:18")
    second = 2 if first == 1 else 1
    question = prompt.rsplit("Question:", 1)[-1]
    # The service tells the model which language to reply in.
    if "language of the question (Hebrew)" in prompt:
        text = (
            f"התורה מצווה **ואהבת לרעך כמוך** [{first}]. "
            f"גם מקור [{second}] עוסק בעניין הזה."
        )
        return text.split(" "), WORD_DELAY
    if LONG in question:
        sentence = f"The verse teaches love of one's neighbour [{first}]. "
        return (sentence * 60).split(" "), LONG_WORD_DELAY
    if HOSTILE in question:
        text = (
            f"The text <img src=x onerror=alert(1)> reads plainly [{first}]. "
            f"A [link](javascript:alert(2)) is not followed [{first}]. "
            f"Code such as `[1]` stays code [{first}]."
        )
        return text.split(" "), WORD_DELAY
    text = (
        f"The Torah commands **love of one's neighbour as oneself** [{first}]. "
        f"It says \u201cthou shalt love thy neighbour as thyself\u201d [{first}]. "
        f"The same chapter sets it among other laws between people [{first}]. "
        f"Another passage on the theme is source [{second}]."
    )
    return text.split(" "), WORD_DELAY


class _Handler(BaseHTTPRequestHandler):
    server: StubServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions" or body.get("stream") is not True:
            self.send_response(404)
            self.end_headers()
            return
        prompt = "\n".join(str(m.get("content", "")) for m in body["messages"])
        words, delay = answer_for(prompt)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.server.started.set()
        try:
            self._send(self._chunk(body["model"], {"role": "assistant", "content": ""}))
            for index, word in enumerate(words):
                time.sleep(delay)
                piece = word if index == len(words) - 1 else word + " "
                self._send(self._chunk(body["model"], {"content": piece}))
            self._send(self._chunk(body["model"], {}, "stop"))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.server.finished += 1
        except (BrokenPipeError, ConnectionResetError):
            self.server.dropped += 1

    @staticmethod
    def _chunk(
        model: str, delta: dict[str, Any], finish: str | None = None
    ) -> dict[str, Any]:
        return {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def _send(self, payload: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.started = threading.Event()
        self.finished = 0
        self.dropped = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1"


@contextmanager
def stub_server() -> Iterator[StubServer]:
    server = StubServer()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
