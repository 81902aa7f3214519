"""OpenAICompatibleModel against a local server that speaks the chat completions API."""

from __future__ import annotations

import threading

import pytest
from fake_chat_api import FakeChatServer, text_of, text_pieces

from torah_study.answer.llm import ChatMessage, ProviderError
from torah_study.answer.llm.base import Usage
from torah_study.answer.llm.openai_compat import (
    PLACEHOLDER_API_KEY,
    OpenAICompatibleModel,
)
from torah_study.embeddings.retry import RetryPolicy

MESSAGES = [
    ChatMessage(role="system", content="Answer from the sources."),
    ChatMessage(role="user", content="Who wrote Psalms?"),
    ChatMessage(role="assistant", content="David."),
    ChatMessage(role="user", content="And Proverbs?"),
]


def make_model(
    server: FakeChatServer | str, attempts: int = 3, **kwargs: object
) -> OpenAICompatibleModel:
    url = server if isinstance(server, str) else server.base_url
    retry = RetryPolicy(max_attempts=attempts, base_delay=0.01)
    return OpenAICompatibleModel(f"{url}/v1", "local-model", retry=retry, **kwargs)  # type: ignore[arg-type]


def test_stream_joins_pieces(openai_server: FakeChatServer) -> None:
    model = make_model(openai_server)

    streamed = list(model.stream(MESSAGES, max_tokens=64))
    pieces = text_pieces(iter(streamed))

    assert pieces == ["Hello", ", ", "world", "!"]
    assert "".join(pieces) == "Hello, world!"
    assert streamed[-1] == Usage(prompt_tokens=3, completion_tokens=4)
    assert model.name == "openai:local-model"


def test_stream_cut_before_finish_raises(openai_server: FakeChatServer) -> None:
    openai_server.script.openai_finish = None
    model = make_model(openai_server)
    received: list[str] = []

    with pytest.raises(ProviderError, match="before the model finished"):
        for piece in model.stream(MESSAGES, max_tokens=64):
            if isinstance(piece, str):
                received.append(piece)

    assert "".join(received) == "Hello, world!"


def test_request_body_and_headers(openai_server: FakeChatServer) -> None:
    list(make_model(openai_server).stream(MESSAGES, max_tokens=77))

    assert len(openai_server.requests) == 1
    request = openai_server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"
    assert request.body["stream"] is True
    assert request.body["temperature"] == 0
    assert request.body["max_tokens"] == 77
    assert request.body["model"] == "local-model"
    assert request.body["messages"] == [
        {"role": "system", "content": "Answer from the sources."},
        {"role": "user", "content": "Who wrote Psalms?"},
        {"role": "assistant", "content": "David."},
        {"role": "user", "content": "And Proverbs?"},
    ]


def test_api_key_sent_as_bearer(openai_server: FakeChatServer) -> None:
    model = OpenAICompatibleModel(
        f"{openai_server.base_url}/v1", "local-model", api_key="sk-test"
    )

    list(model.stream(MESSAGES, max_tokens=8))

    assert openai_server.requests[0].headers["authorization"] == "Bearer sk-test"


def test_first_piece_arrives_before_end(openai_server: FakeChatServer) -> None:
    release = threading.Event()
    openai_server.script.hold_after_first = release
    stream = make_model(openai_server).stream(MESSAGES, max_tokens=8)

    first = next(stream)
    finished_early = openai_server.stream_finished.is_set()
    release.set()
    rest = text_pieces(stream)

    assert first == "Hello"
    assert not finished_early
    assert rest == [", ", "world", "!"]


def test_server_error_raises_provider_error(openai_server: FakeChatServer) -> None:
    openai_server.script.failures = [500]
    model = make_model(openai_server, attempts=1, api_key="sk-secret")

    with pytest.raises(ProviderError, match="HTTP 500") as caught:
        list(model.stream(MESSAGES, max_tokens=8))

    assert "sk-secret" not in str(caught.value)
    assert len(openai_server.requests) == 1


def test_unauthorized_is_not_retried(openai_server: FakeChatServer) -> None:
    openai_server.script.failures = [401]
    model = make_model(openai_server, attempts=3)

    with pytest.raises(ProviderError, match="HTTP 401"):
        list(model.stream(MESSAGES, max_tokens=8))

    assert len(openai_server.requests) == 1


def test_unavailable_is_retried(openai_server: FakeChatServer) -> None:
    openai_server.script.failures = [503]
    model = make_model(openai_server, attempts=2)

    text = text_of(model.stream(MESSAGES, max_tokens=8))

    assert text == "Hello, world!"
    assert len(openai_server.requests) == 2


def test_connection_refused_raises(closed_port_url: str) -> None:
    model = make_model(closed_port_url, attempts=1, timeout_seconds=5)

    with pytest.raises(ProviderError, match="APIConnectionError"):
        list(model.stream(MESSAGES, max_tokens=8))


def test_missing_url_or_model_rejected() -> None:
    with pytest.raises(ProviderError, match="TORAH_STUDY_OPENAI_BASE_URL"):
        OpenAICompatibleModel("", "m")
    with pytest.raises(ProviderError, match="TORAH_STUDY_LLM_MODEL"):
        OpenAICompatibleModel("http://127.0.0.1:1/v1", "")
