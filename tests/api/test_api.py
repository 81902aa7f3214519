"""The HTTP API served by a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence

import httpx
import pytest
import uvicorn

from torah_study.answer.llm.base import ChatMessage
from torah_study.answer.pipeline import AnswerPipeline
from torah_study.api.app import create_app
from torah_study.service import Services

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

QUESTION = "Where does the Torah say to love your neighbor as yourself?"


class SlowModel:
    """Streams a cited answer slowly, so keep-alive comments get sent."""

    name = "slow"

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str]:
        time.sleep(0.6)
        yield "Leviticus 19:18 commands it [1]."


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def base_url(services: Services) -> Iterator[str]:
    settings = services.settings.model_copy(update={"keepalive_seconds": 0.2})
    app = create_app(settings, services=services)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("uvicorn did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _parse_sse(raw: str) -> tuple[list[tuple[str, object]], int]:
    """Return (event, decoded data) pairs and the number of comment lines."""
    events: list[tuple[str, object]] = []
    comments = 0
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":"):
                comments += 1
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events, comments


def test_health(base_url: str) -> None:
    response = httpx.get(f"{base_url}/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["segments"] > 1000
    assert body["vectors"] > 0


def test_chat_json(base_url: str) -> None:
    response = httpx.post(f"{base_url}/chat", json={"question": QUESTION}, timeout=60)
    assert response.status_code == 200
    body = response.json()
    assert "Leviticus 19:18" in body["refs"]
    assert body["verification"]["passed"]
    assert body["sources"][0]["he"]


def test_blank_question_rejected(base_url: str) -> None:
    response = httpx.post(f"{base_url}/chat", json={"question": "   "})
    assert response.status_code == 422
    assert "blank" in response.text


def test_long_question_rejected(base_url: str) -> None:
    response = httpx.post(f"{base_url}/chat/stream", json={"question": "x" * 2001})
    assert response.status_code == 422


def test_missing_question_rejected(base_url: str) -> None:
    response = httpx.post(f"{base_url}/chat", json={})
    assert response.status_code == 422


def test_stream_events_in_order_and_match_json(base_url: str) -> None:
    with httpx.stream(
        "POST", f"{base_url}/chat/stream", json={"question": QUESTION}, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        raw = "".join(response.iter_text())
    events, _ = _parse_sse(raw)
    names = [name for name, _ in events]
    assert names[0] == "sources"
    assert names[-2:] == ["verification", "done"]
    assert set(names[1:-2]) == {"token"}
    streamed = "".join(str(data) for name, data in events if name == "token")
    done = events[-1][1]
    assert isinstance(done, dict)
    assert streamed == done["answer"]
    json_answer = httpx.post(
        f"{base_url}/chat", json={"question": QUESTION}, timeout=60
    )
    assert streamed == json_answer.json()["answer"]


def test_stream_sends_keepalive_comments(services: Services, base_url: str) -> None:
    original = services.pipeline
    services.pipeline = AnswerPipeline(
        services.retriever, services.catalog, SlowModel()
    )
    try:
        with httpx.stream(
            "POST", f"{base_url}/chat/stream", json={"question": QUESTION}, timeout=60
        ) as response:
            raw = "".join(response.iter_text())
    finally:
        services.pipeline = original
    events, comments = _parse_sse(raw)
    assert comments >= 1
    assert events[-1][0] == "done"


def test_search_endpoint(base_url: str) -> None:
    response = httpx.get(
        f"{base_url}/search", params={"q": "ואהבת לרעך כמוך"}, timeout=60
    )
    assert response.status_code == 200
    refs = [r["ref"] for r in response.json()["results"]]
    assert "Leviticus 19:18" in refs


def test_search_with_book_filter(base_url: str) -> None:
    response = httpx.get(
        f"{base_url}/search", params={"q": "Torah", "book": "Pirkei Avot"}, timeout=60
    )
    assert response.status_code == 200
    assert all(r["book"] == "Pirkei Avot" for r in response.json()["results"])


def test_text_with_neighbours(base_url: str) -> None:
    response = httpx.get(f"{base_url}/texts/Genesis 1:2", params={"context": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["he_ref"] == "בראשית א:ב"
    assert [s["ref"] for s in body["segments"]] == ["Genesis 1:2"]
    assert [s["ref"] for s in body["before"]] == ["Genesis 1:1"]
    assert [s["ref"] for s in body["after"]] == ["Genesis 1:3"]
    assert body["segments"][0]["he"]
    assert body["segments"][0]["en"]


def test_text_by_hebrew_ref(base_url: str) -> None:
    response = httpx.get(f"{base_url}/texts/ברכות ב.", params={"context": 0})
    assert response.status_code == 200
    assert response.json()["ref"] == "Berakhot 2a"


def test_text_out_of_range(base_url: str) -> None:
    response = httpx.get(f"{base_url}/texts/Genesis 51:1")
    assert response.status_code == 404
    assert "Genesis has 50 chapters" in response.json()["detail"]


def test_text_unknown_book(base_url: str) -> None:
    response = httpx.get(f"{base_url}/texts/Tanya 1:1")
    assert response.status_code == 404
    assert "Unknown book" in response.json()["detail"]


def test_filter_resolves_aliases(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/chat",
        json={"question": "love thy neighbour as thyself", "books": ["lev"]},
        timeout=60,
    )
    assert response.status_code == 200
    assert "Leviticus 19:18" in response.json()["refs"]


def test_unknown_filter_rejected(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/chat",
        json={"question": "love", "categories": ["%"]},
        timeout=60,
    )
    assert response.status_code == 422
    assert "Unknown category" in response.json()["detail"]


def test_lone_surrogate_rejected(base_url: str) -> None:
    body = '{"question": "love \\ud800 neighbor"}'
    response = httpx.post(
        f"{base_url}/chat",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 422
