"""Fixtures that start the fake chat APIs of fake_chat_api.py on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from fake_chat_api import FakeChatServer, GeminiHandler, OpenAIHandler, serve


@pytest.fixture
def gemini_server() -> Iterator[FakeChatServer]:
    yield from serve(GeminiHandler)


@pytest.fixture
def openai_server() -> Iterator[FakeChatServer]:
    yield from serve(OpenAIHandler)


@pytest.fixture
def closed_port_url() -> str:
    """Return a URL on 127.0.0.1 where nothing listens, for connection errors."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
