"""Provider faults through the HTTP API: one terminal error, honest stored status.

The real ``openai`` and ``google-genai`` clients talk to a FaultServer on
127.0.0.1, which fails each request as a test scripts it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from fault_server import (
    Fault,
    FaultServer,
    RecordedRequest,
    fault_server,
    gemini_events,
    json_fault,
    openai_events,
    sse_fault,
)
from servers import accounts_settings, live_server, register
from torah_study.answer.llm.base import AnswerModel
from torah_study.answer.llm.gemini import GeminiModel
from torah_study.answer.llm.openai_compat import OpenAICompatibleModel
from torah_study.answer.pipeline import AnswerPipeline
from torah_study.api.app import create_app
from torah_study.config import Settings
from torah_study.embeddings.retry import RetryPolicy
from torah_study.providers.breaker import CircuitBreaker
from torah_study.service import Services, build_accounts

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

QUESTION = "Where does the Torah say to love your neighbor as yourself?"
ATTEMPTS = 2
RETRY = RetryPolicy(
    max_attempts=ATTEMPTS, base_delay=0.01, max_delay=0.02, max_retry_after=1.0
)
TIMEOUT = 0.3


def _prompt(request: RecordedRequest) -> str:
    body = request.body
    if "messages" in body:
        return str(body["messages"][-1]["content"])
    return str(body["contents"][-1]["parts"][0]["text"])


def answer_pieces(request: RecordedRequest) -> list[str]:
    """Return two cited sentences, in words, citing Leviticus 19:18's number."""
    number = 1
    for line in _prompt(request).splitlines():
        if "Leviticus 19:18" in line and line.startswith("["):
            number = int(line[1 : line.index("]")])
            break
    sentence = f"Leviticus 19:18 commands to love your neighbor [{number}]. "
    return [word + " " for word in (sentence * 2).split()]


def openai_answer(request: RecordedRequest) -> Fault:
    return sse_fault(openai_events(answer_pieces(request)))


def gemini_answer(request: RecordedRequest) -> Fault:
    return sse_fault(gemini_events(answer_pieces(request)))


def dropped(provider: str) -> Callable[[RecordedRequest], Fault]:
    """Stream the first sentence and a word of the second, then drop."""

    def build(request: RecordedRequest) -> Fault:
        pieces = answer_pieces(request)
        if provider == "openai":
            # The role chunk, the words up to the second sentence's first.
            events = openai_events(pieces)
            return sse_fault(events, drop_after=1 + len(pieces) // 2 + 1)
        return sse_fault(gemini_events(pieces), drop_after=len(pieces) // 2 + 1)

    return build


# Faults before any token: each is sent for every attempt.
EARLY_FAULTS: dict[str, Fault] = {
    "server_error": json_fault(500, {"error": {"message": "internal"}}),
    "rate_limited": json_fault(
        429, {"error": {"message": "slow down"}}, **{"Retry-After": "0.05"}
    ),
    "read_timeout": Fault(delay=TIMEOUT * 3),
    "disconnect": Fault(disconnect=True),
    "invalid_json": Fault(
        headers={"Content-Type": "application/json"}, body=b"{not json"
    ),
    "wrong_shape": json_fault(200, {"unexpected": True}),
    "garbage_sse": sse_fault(["{garbage", "[DONE]"]),
    "drop_before_text": sse_fault(["{}"] * 3, drop_after=0),
}


def make_model(provider: str, server: FaultServer, **kwargs: Any) -> AnswerModel:
    if provider == "openai":
        return OpenAICompatibleModel(
            f"{server.base_url}/v1",
            "local-model",
            retry=RETRY,
            timeout_seconds=TIMEOUT,
            **kwargs,
        )
    return GeminiModel(
        "test-key",
        base_url=server.base_url,
        retry=RETRY,
        timeout_seconds=TIMEOUT,
        **kwargs,
    )


def _events(raw: str) -> list[tuple[str, Any]]:
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


class Api:
    """A live server whose answer model talks to a FaultServer."""

    def __init__(self, client: httpx.Client, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def chat_stream(self) -> list[tuple[str, Any]]:
        with self.client.stream(
            "POST", "/chat/stream", headers=self.headers, json={"question": QUESTION}
        ) as response:
            assert response.status_code == 200
            return _events("".join(response.iter_text()))

    def ask(self) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        """Ask in a new conversation; return the events and the stored answer."""
        created = self.client.post("/conversations", headers=self.headers, json={})
        conversation_id = created.json()["id"]
        with self.client.stream(
            "POST",
            f"/conversations/{conversation_id}/messages",
            headers={**self.headers, "Accept": "text/event-stream"},
            json={"content": QUESTION},
        ) as response:
            events = _events("".join(response.iter_text()))
        stored = self.client.get(
            f"/conversations/{conversation_id}", headers=self.headers
        ).json()
        answer: dict[str, Any] = stored["messages"][1]
        return events, answer


@pytest.fixture(scope="module", params=["openai", "gemini"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def faults(provider: str) -> Iterator[FaultServer]:
    default = openai_answer if provider == "openai" else gemini_answer
    with fault_server(default) as server:
        yield server


def _serve(services: Services, settings: Settings, model: AnswerModel) -> Iterator[Api]:
    pipeline = AnswerPipeline(services.retriever, services.catalog, model)
    accounts = build_accounts(settings, services.catalog)
    app = create_app(
        settings, services=replace(services, pipeline=pipeline), accounts=accounts
    )
    try:
        with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            yield Api(client, register(client)["headers"])
    finally:
        accounts.close()


@pytest.fixture(scope="module")
def api(
    provider: str,
    faults: FaultServer,
    services: Services,
    library_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Api]:
    database = tmp_path_factory.mktemp("accounts") / "torah-study.db"
    settings = accounts_settings(library_settings, f"sqlite:///{database}")
    yield from _serve(services, settings, make_model(provider, faults))


def _assert_one_terminal_error(events: list[tuple[str, Any]], code: str) -> None:
    names = [name for name, _ in events]
    assert names[-1] == "error", names
    assert names.count("error") == 1, names
    assert "done" not in names
    assert events[-1][1]["code"] == code


def test_answer_without_faults_completes(faults: FaultServer, api: Api) -> None:
    faults.script = []
    events, answer = api.ask()
    assert events[-1][0] == "done"
    assert answer["status"] == "complete"
    assert "Leviticus 19:18 commands" in answer["content"]


@pytest.mark.parametrize("fault", sorted(EARLY_FAULTS))
def test_fault_before_text_fails_cleanly(
    fault: str, faults: FaultServer, api: Api
) -> None:
    faults.script = [EARLY_FAULTS[fault]] * (2 * ATTEMPTS)
    before = len(faults.requests)
    events = api.chat_stream()
    _assert_one_terminal_error(events, "answer_failed")
    assert not any(name == "token" for name, _ in events)
    assert 1 <= len(faults.requests) - before <= ATTEMPTS

    faults.script = [EARLY_FAULTS[fault]] * (2 * ATTEMPTS)
    events, answer = api.ask()
    _assert_one_terminal_error(events, "answer_failed")
    assert answer["status"] == "failed"
    assert answer["content"] == ""
    assert "The answer model failed" in answer["error"]


def test_transient_fault_is_retried(faults: FaultServer, api: Api) -> None:
    faults.script = [EARLY_FAULTS["server_error"]]
    before = len(faults.requests)
    events, answer = api.ask()
    assert events[-1][0] == "done"
    assert answer["status"] == "complete"
    assert len(faults.requests) - before == 2


def test_drop_mid_stream_keeps_partial_text(
    provider: str, faults: FaultServer, api: Api
) -> None:
    drop = dropped(provider)
    faults.script = []
    faults.default, original = drop, faults.default
    try:
        before = len(faults.requests)
        events = api.chat_stream()
        _assert_one_terminal_error(events, "answer_interrupted")
        tokens = "".join(data for name, data in events if name == "token")
        assert tokens.startswith("Leviticus 19:18 commands")
        # Not retried: a second request would have repeated the text.
        assert len(faults.requests) - before == 1

        events, answer = api.ask()
    finally:
        faults.default = original
    _assert_one_terminal_error(events, "answer_interrupted")
    assert answer["status"] == "interrupted"
    assert answer["content"].startswith("Leviticus 19:18 commands")
    assert answer["content"].count("Leviticus 19:18") == 1


def test_open_breaker_fails_fast(
    provider: str,
    faults: FaultServer,
    services: Services,
    library_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    database = tmp_path_factory.mktemp("breaker") / "torah-study.db"
    settings = accounts_settings(library_settings, f"sqlite:///{database}")
    breaker = CircuitBreaker("Test answer model", failures=ATTEMPTS, cooldown=60.0)
    model = make_model(provider, faults, breaker=breaker)
    for api in _serve(services, settings, model):
        faults.script = [EARLY_FAULTS["server_error"]] * ATTEMPTS
        events, answer = api.ask()
        _assert_one_terminal_error(events, "answer_failed")
        assert breaker.state == "open"

        before = len(faults.requests)
        events, answer = api.ask()
        _assert_one_terminal_error(events, "answer_model_unavailable")
        assert answer["status"] == "failed"
        assert "unavailable" in answer["error"]
        assert len(faults.requests) == before
