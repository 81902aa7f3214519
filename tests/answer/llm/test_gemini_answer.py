"""GeminiModel against a local server that speaks the Gemini streaming API."""

from __future__ import annotations

import threading

import pytest
from fake_chat_api import FakeChatServer, text_of, text_pieces

from torah_study.answer.llm import ChatMessage, ProviderError
from torah_study.answer.llm.base import Usage
from torah_study.answer.llm.gemini import GeminiModel
from torah_study.embeddings.retry import RetryPolicy

API_KEY = "test-key-123"

MESSAGES = [
    ChatMessage(role="system", content="Answer from the sources."),
    ChatMessage(role="user", content="Who wrote Psalms?"),
    ChatMessage(role="assistant", content="David."),
    ChatMessage(role="user", content="And Proverbs?"),
]


def make_model(server_url: str, attempts: int = 3, **kwargs: object) -> GeminiModel:
    retry = RetryPolicy(max_attempts=attempts, base_delay=0.01)
    return GeminiModel(API_KEY, base_url=server_url, retry=retry, **kwargs)  # type: ignore[arg-type]


def test_stream_joins_pieces(gemini_server: FakeChatServer) -> None:
    model = make_model(gemini_server.base_url)

    streamed = list(model.stream(MESSAGES, max_tokens=64))
    pieces = text_pieces(iter(streamed))

    assert pieces == ["Hello", ", ", "world", "!"]
    assert "".join(pieces) == "Hello, world!"
    assert streamed[-1] == Usage(prompt_tokens=3, completion_tokens=None)
    assert model.name == "gemini:gemini-2.5-flash"


def test_request_body_and_headers(gemini_server: FakeChatServer) -> None:
    model = make_model(gemini_server.base_url, model="gemini-test")

    list(model.stream(MESSAGES, max_tokens=77))

    assert len(gemini_server.requests) == 1
    request = gemini_server.requests[0]
    assert "/models/gemini-test:streamGenerateContent" in request.path
    assert "alt=sse" in request.path
    assert request.headers["x-goog-api-key"] == API_KEY
    generation = request.body["generationConfig"]
    assert generation["temperature"] == 0
    assert generation["maxOutputTokens"] == 77
    assert request.body["systemInstruction"]["parts"] == [
        {"text": "Answer from the sources."}
    ]
    roles = [turn["role"] for turn in request.body["contents"]]
    assert roles == ["user", "model", "user"]
    texts = [turn["parts"][0]["text"] for turn in request.body["contents"]]
    assert texts == ["Who wrote Psalms?", "David.", "And Proverbs?"]


def test_thinking_budget_zero_by_default(gemini_server: FakeChatServer) -> None:
    list(make_model(gemini_server.base_url).stream(MESSAGES, max_tokens=8))
    list(
        make_model(gemini_server.base_url, thinking_budget=None).stream(
            MESSAGES, max_tokens=8
        )
    )

    default_config = gemini_server.requests[0].body["generationConfig"]
    thinking = default_config["thinkingConfig"]
    # google-genai 3.6 sends this key in snake_case. Proto3 JSON parsers accept
    # both the field name and its camelCase form.
    assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == 0
    assert "thinkingConfig" not in gemini_server.requests[1].body["generationConfig"]


def test_first_piece_arrives_before_end(gemini_server: FakeChatServer) -> None:
    release = threading.Event()
    gemini_server.script.hold_after_first = release
    stream = make_model(gemini_server.base_url).stream(MESSAGES, max_tokens=8)

    first = next(stream)
    finished_early = gemini_server.stream_finished.is_set()
    release.set()
    rest = text_pieces(stream)

    assert first == "Hello"
    assert not finished_early
    assert rest == [", ", "world", "!"]


def test_server_error_raises_provider_error(gemini_server: FakeChatServer) -> None:
    gemini_server.script.failures = [500]
    model = make_model(gemini_server.base_url, attempts=1)

    with pytest.raises(ProviderError, match="500") as caught:
        list(model.stream(MESSAGES, max_tokens=8))

    assert API_KEY not in str(caught.value)
    assert len(gemini_server.requests) == 1


def test_unauthorized_is_not_retried(gemini_server: FakeChatServer) -> None:
    gemini_server.script.failures = [401]
    model = make_model(gemini_server.base_url, attempts=3)

    with pytest.raises(ProviderError, match="401"):
        list(model.stream(MESSAGES, max_tokens=8))

    assert len(gemini_server.requests) == 1


def test_unavailable_is_retried(gemini_server: FakeChatServer) -> None:
    gemini_server.script.failures = [503]
    model = make_model(gemini_server.base_url, attempts=2)

    text = text_of(model.stream(MESSAGES, max_tokens=8))

    assert text == "Hello, world!"
    assert len(gemini_server.requests) == 2


def test_no_text_raises_with_reason(gemini_server: FakeChatServer) -> None:
    gemini_server.script.pieces = []
    gemini_server.script.finish_reason = "SAFETY"
    model = make_model(gemini_server.base_url)

    with pytest.raises(ProviderError, match="SAFETY"):
        list(model.stream(MESSAGES, max_tokens=8))


def test_connection_refused_raises(closed_port_url: str) -> None:
    model = make_model(closed_port_url, attempts=1, timeout_seconds=5)

    with pytest.raises(ProviderError, match="failed"):
        list(model.stream(MESSAGES, max_tokens=8))


def test_missing_key_rejected() -> None:
    with pytest.raises(ProviderError, match="TORAH_STUDY_GEMINI_API_KEY"):
        GeminiModel("")


def test_only_system_messages_rejected(gemini_server: FakeChatServer) -> None:
    model = make_model(gemini_server.base_url)

    with pytest.raises(ProviderError, match="user message"):
        list(model.stream([ChatMessage(role="system", content="x")], max_tokens=8))

    assert gemini_server.requests == []
