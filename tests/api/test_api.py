"""The HTTP API served by a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

from servers import accounts_settings, live_server, register
from slow_models import UnfinishedSentenceModel
from torah_study.answer.llm.base import ChatMessage
from torah_study.answer.pipeline import AnswerPipeline
from torah_study.api.app import create_app
from torah_study.config import Settings
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


@pytest.fixture(scope="module")
def api(
    services: Services,
    library_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[httpx.Client]:
    """A signed-in client of a real uvicorn server (accounts in SQLite)."""
    database = tmp_path_factory.mktemp("accounts") / "torah-study.db"
    settings = accounts_settings(library_settings, f"sqlite:///{database}")
    app = create_app(settings, services=services)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        client.headers.update(register(client)["headers"])
        yield client


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


def test_health(api: httpx.Client) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["segments"] > 1000
    assert body["vectors"] > 0


def test_chat_json(api: httpx.Client) -> None:
    response = api.post("/chat", json={"question": QUESTION}, timeout=60)
    assert response.status_code == 200
    body = response.json()
    assert "Leviticus 19:18" in body["refs"]
    assert body["verification"]["passed"]
    assert body["sources"][0]["he"]


def test_blank_question_rejected(api: httpx.Client) -> None:
    response = api.post("/chat", json={"question": "   "})
    assert response.status_code == 422
    assert "blank" in response.text


def test_long_question_rejected(api: httpx.Client) -> None:
    response = api.post("/chat/stream", json={"question": "x" * 2001})
    assert response.status_code == 422


def test_missing_question_rejected(api: httpx.Client) -> None:
    response = api.post("/chat", json={})
    assert response.status_code == 422


def test_stream_events_in_order_and_match_json(api: httpx.Client) -> None:
    with api.stream(
        "POST", "/chat/stream", json={"question": QUESTION}, timeout=60
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
    json_answer = api.post("/chat", json={"question": QUESTION}, timeout=60)
    assert streamed == json_answer.json()["answer"]


def test_stream_sends_keepalive_comments(services: Services, api: httpx.Client) -> None:
    original = services.pipeline
    services.pipeline = AnswerPipeline(
        services.retriever, services.catalog, SlowModel()
    )
    try:
        with api.stream(
            "POST", "/chat/stream", json={"question": QUESTION}, timeout=60
        ) as response:
            raw = "".join(response.iter_text())
    finally:
        services.pipeline = original
    events, comments = _parse_sse(raw)
    assert comments >= 1
    assert events[-1][0] == "done"


def test_search_endpoint(api: httpx.Client) -> None:
    response = api.get("/search", params={"q": "ואהבת לרעך כמוך"}, timeout=60)
    assert response.status_code == 200
    refs = [r["ref"] for r in response.json()["results"]]
    assert "Leviticus 19:18" in refs


def test_search_with_book_filter(api: httpx.Client) -> None:
    response = api.get(
        "/search", params={"q": "Torah", "book": "Pirkei Avot"}, timeout=60
    )
    assert response.status_code == 200
    assert all(r["book"] == "Pirkei Avot" for r in response.json()["results"])


def test_text_with_neighbours(api: httpx.Client) -> None:
    response = api.get("/texts/Genesis 1:2", params={"context": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["he_ref"] == "בראשית א:ב"
    assert [s["ref"] for s in body["segments"]] == ["Genesis 1:2"]
    assert [s["ref"] for s in body["before"]] == ["Genesis 1:1"]
    assert [s["ref"] for s in body["after"]] == ["Genesis 1:3"]
    assert body["segments"][0]["he"]
    assert body["segments"][0]["en"]
    # Rashi comments on Genesis 1:2; the test library contains Rashi on Genesis.
    assert {
        "ref": "Rashi on Genesis 1:2",
        "he_ref": 'רש"י על בראשית א:ב',
        "kind": "commentary",
    } in body["related"]


def test_text_by_hebrew_ref(api: httpx.Client) -> None:
    response = api.get("/texts/ברכות ב.", params={"context": 0})
    assert response.status_code == 200
    assert response.json()["ref"] == "Berakhot 2a"


def test_text_out_of_range(api: httpx.Client) -> None:
    response = api.get("/texts/Genesis 51:1")
    assert response.status_code == 404
    assert "Genesis has 50 chapters" in response.json()["detail"]


def test_text_unknown_book(api: httpx.Client) -> None:
    response = api.get("/texts/Tanya 1:1")
    assert response.status_code == 404
    assert "Unknown book" in response.json()["detail"]


def test_text_without_section_keeps_defaults(api: httpx.Client) -> None:
    body = api.get("/texts/Genesis 1:3", params={"context": 1}).json()
    assert [s["ref"] for s in body["segments"]] == ["Genesis 1:3"]
    assert body["section_ref"] is None
    assert body["highlight"] == []
    assert body["truncated"] is False


def _section(api: httpx.Client, ref: str) -> dict[str, Any]:
    response = api.get(f"/texts/{ref}", params={"section": "true", "context": 5})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_text_section_of_a_verse(api: httpx.Client) -> None:
    body = _section(api, "Genesis 1:3")
    assert body["ref"] == "Genesis 1:3"
    assert body["he_ref"] == "בראשית א:ג"
    assert body["section_ref"] == "Genesis 1"
    refs = [s["ref"] for s in body["segments"]]
    assert refs == [f"Genesis 1:{verse}" for verse in range(1, 32)]
    assert body["highlight"] == ["Genesis 1:3"]
    assert body["before"] == []
    assert body["after"] == []
    assert body["truncated"] is False
    assert all(s["he"] and s["en"] for s in body["segments"])


def test_text_section_of_a_daf_line(api: httpx.Client) -> None:
    body = _section(api, "Berakhot 2a:3")
    assert body["section_ref"] == "Berakhot 2a"
    refs = [s["ref"] for s in body["segments"]]
    assert len(refs) > 3
    assert refs == [f"Berakhot 2a:{line}" for line in range(1, len(refs) + 1)]
    assert body["highlight"] == ["Berakhot 2a:3"]


def test_text_section_of_a_commentary(api: httpx.Client) -> None:
    body = _section(api, "Rashi on Genesis 1:1:2")
    assert body["section_ref"] == "Rashi on Genesis 1:1"
    refs = [s["ref"] for s in body["segments"]]
    assert len(refs) >= 2
    expected = [f"Rashi on Genesis 1:1:{n}" for n in range(1, len(refs) + 1)]
    assert refs == expected
    assert body["highlight"] == ["Rashi on Genesis 1:1:2"]


def test_text_section_of_a_range(api: httpx.Client) -> None:
    body = _section(api, "Genesis 1:2-4")
    assert body["ref"] == "Genesis 1:2-4"
    assert body["section_ref"] == "Genesis 1"
    assert len(body["segments"]) == 31
    assert body["highlight"] == ["Genesis 1:2", "Genesis 1:3", "Genesis 1:4"]


def test_text_section_of_a_range_across_chapters(api: httpx.Client) -> None:
    body = _section(api, "Genesis 1:31-2:3")
    assert body["section_ref"] == "Genesis 1-2"
    refs = [s["ref"] for s in body["segments"]]
    assert refs[0] == "Genesis 1:1"
    assert refs[30:32] == ["Genesis 1:31", "Genesis 2:1"]
    assert refs[-1] == "Genesis 2:25"
    assert body["highlight"] == [
        "Genesis 1:31",
        "Genesis 2:1",
        "Genesis 2:2",
        "Genesis 2:3",
    ]


def test_text_section_of_a_section_is_itself(api: httpx.Client) -> None:
    body = _section(api, "Genesis 1")
    assert body["section_ref"] == "Genesis 1"
    refs = [s["ref"] for s in body["segments"]]
    assert len(refs) == 31
    assert body["highlight"] == refs


def test_text_section_is_capped(api: httpx.Client) -> None:
    body = _section(api, "Genesis")
    assert body["section_ref"] == "Genesis"
    assert body["truncated"] is True
    refs = [s["ref"] for s in body["segments"]]
    assert len(refs) == 400
    assert refs[:31] == [f"Genesis 1:{verse}" for verse in range(1, 32)]
    assert refs[31] == "Genesis 2:1"
    assert body["highlight"] == refs


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("Genesis 51:1", "Genesis has 50 chapters"),
        ("Genesis 1:32", "Genesis 1 has 31 verses"),
        ("Tanya 1:1", "Unknown book"),
    ],
)
def test_text_section_of_unknown_ref_is_404(
    api: httpx.Client, ref: str, message: str
) -> None:
    response = api.get(f"/texts/{ref}", params={"section": "true"})
    assert response.status_code == 404
    assert message in response.json()["detail"]


def test_filter_resolves_aliases(api: httpx.Client) -> None:
    response = api.post(
        "/chat",
        json={"question": "love thy neighbour as thyself", "books": ["lev"]},
        timeout=60,
    )
    assert response.status_code == 200
    assert "Leviticus 19:18" in response.json()["refs"]


def test_unknown_filter_rejected(api: httpx.Client) -> None:
    response = api.post(
        "/chat",
        json={"question": "love", "categories": ["%"]},
        timeout=60,
    )
    assert response.status_code == 422
    assert "Unknown category" in response.json()["detail"]


def test_lone_surrogate_rejected(api: httpx.Client) -> None:
    body = '{"question": "love \\ud800 neighbor"}'
    response = api.post(
        "/chat",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 422


class CountingModel:
    """Streams many short cited sentences and records how far it got."""

    name = "counting"

    def __init__(self) -> None:
        self.produced = 0
        self.closed = threading.Event()

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str]:
        try:
            for _ in range(300):
                time.sleep(0.02)
                self.produced += 1
                yield "Leviticus 19:18 says it [1]. "
        finally:
            self.closed.set()


def test_leaving_a_stream_stops_the_model(
    services: Services, api: httpx.Client
) -> None:
    model = CountingModel()
    original = services.pipeline
    services.pipeline = AnswerPipeline(services.retriever, services.catalog, model)
    try:
        with api.stream(
            "POST", "/chat/stream", json={"question": QUESTION}
        ) as response:
            received = ""
            for chunk in response.iter_text():
                received += chunk
                if received.count("event: token") >= 3:
                    break
        assert model.closed.wait(10)
    finally:
        services.pipeline = original
    assert model.produced < 300


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_leaving_a_stream_stops_an_unfinished_sentence(
    services: Services, api: httpx.Client
) -> None:
    # 300 pieces of 0.02 s: about six seconds before the sentence ends.
    model = UnfinishedSentenceModel(words=300, delay=0.02)
    original = services.pipeline
    services.pipeline = AnswerPipeline(services.retriever, services.catalog, model)
    try:
        with api.stream(
            "POST", "/chat/stream", json={"question": QUESTION}
        ) as response:
            # Holding the iterator keeps the response open after the break.
            chunks = response.iter_text()
            received = ""
            for chunk in chunks:
                received += chunk
                if "event: sources" in received:
                    break
            assert _wait_for(lambda: model.requested >= 3, 10)
        assert model.closed.wait(10)
    finally:
        services.pipeline = original
    stopped_at = model.requested
    assert stopped_at < 150
    time.sleep(0.3)
    assert model.requested == stopped_at
