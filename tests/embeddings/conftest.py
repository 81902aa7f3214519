"""Fixtures that start the fake embedding APIs of fake_embedding_api.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_embedding_api import FakeEmbeddingServer, GeminiHandler, OpenAIHandler, serve


@pytest.fixture
def gemini_embedding_server() -> Iterator[FakeEmbeddingServer]:
    yield from serve(GeminiHandler)


@pytest.fixture
def openai_embedding_server() -> Iterator[FakeEmbeddingServer]:
    yield from serve(OpenAIHandler)
