"""Saved conversations over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import pytest

from servers import accounts_settings, live_server, register
from slow_models import UnfinishedSentenceModel
from torah_study.answer.llm.base import ChatMessage, ProviderError, Usage
from torah_study.answer.pipeline import (
    AnswerPipeline,
    DoneEvent,
    Event,
    SourcesEvent,
    TokenEvent,
    VerificationEvent,
)
from torah_study.api.app import create_app
from torah_study.config import Settings
from torah_study.conversations.chat import ConversationChat
from torah_study.index.base import Filters
from torah_study.service import Accounts, Services, build_accounts

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

QUESTION = "Where does the Torah say to love your neighbor as yourself?"


class TrickleModel:
    """Streams a cited answer one word at a time, slowly, then may fail.

    The answer cites whichever source number holds Leviticus 19:18.
    """

    name = "trickle"

    def __init__(self, delay: float, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str | Usage]:
        prompt = messages[-1].content
        number = 1
        for line in prompt.splitlines():
            if "Leviticus 19:18" in line and line.startswith("["):
                number = int(line[1 : line.index("]")])
                break
        sentence = (
            f"Leviticus 19:18 commands to love your neighbor as yourself [{number}]. "
        )
        for repeat in range(40):
            for index, word in enumerate(sentence.split(" ")):
                if self.fail and repeat == 1 and index == 2:
                    # Mid-sentence, after the first sentence was shown.
                    raise ProviderError("connection reset by the provider")
                time.sleep(self.delay)
                yield word + " "


class CountedModel(TrickleModel):
    """Answers with one cited sentence and reports its token counts."""

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str | Usage]:
        for piece in super().stream(messages, max_tokens=max_tokens):
            yield piece
            if isinstance(piece, str) and piece.strip().endswith("."):
                break
        yield Usage(prompt_tokens=640, completion_tokens=12)


def _serve(services: Services, settings: Settings, model: Any) -> tuple[Accounts, Any]:
    pipeline = AnswerPipeline(services.retriever, services.catalog, model)
    accounts = build_accounts(settings, services.catalog)
    app = create_app(
        settings, services=replace(services, pipeline=pipeline), accounts=accounts
    )
    return accounts, app


@pytest.fixture(scope="module")
def server(
    services: Services, library_settings: Settings, database_url: str
) -> Iterator[tuple[httpx.Client, Accounts]]:
    settings = accounts_settings(library_settings, database_url)
    accounts = build_accounts(settings, services.catalog)
    app = create_app(settings, services=services, accounts=accounts)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client, accounts
    accounts.close()


@pytest.fixture()
def api(server: tuple[httpx.Client, Accounts]) -> httpx.Client:
    return server[0]


@pytest.fixture()
def user(api: httpx.Client) -> dict[str, Any]:
    return register(api)


def _new(api: httpx.Client, headers: dict[str, str], title: str | None = None) -> str:
    body = {"title": title} if title else {}
    response = api.post("/conversations", headers=headers, json=body)
    assert response.status_code == 201, response.text
    conversation_id: str = response.json()["id"]
    return conversation_id


def _ask(
    api: httpx.Client, headers: dict[str, str], conversation_id: str, content: str
) -> dict[str, Any]:
    response = api.post(
        f"/conversations/{conversation_id}/messages",
        headers=headers,
        json={"content": content},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


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


def test_new_conversation_is_empty_and_untitled(
    api: httpx.Client, user: dict[str, Any]
) -> None:
    conversation_id = _new(api, user["headers"])
    body = api.get(f"/conversations/{conversation_id}", headers=user["headers"]).json()
    assert body["title"] is None
    assert body["messages"] == []


def test_asking_saves_both_messages_with_sources(
    api: httpx.Client, user: dict[str, Any]
) -> None:
    conversation_id = _new(api, user["headers"])
    turn = _ask(api, user["headers"], conversation_id, QUESTION)
    answer = turn["assistant_message"]
    assert turn["user_message"]["content"] == QUESTION
    assert turn["user_message"]["role"] == "user"
    assert answer["role"] == "assistant"
    assert answer["status"] == "complete"
    assert answer["provider"] == "sources-only"
    assert answer["latency_ms"] > 0
    refs = [s["ref"] for s in answer["sources"]]
    assert "Leviticus 19:18" in refs
    assert [s["rank"] for s in answer["sources"]] == list(range(1, len(refs) + 1))
    lev = next(s for s in answer["sources"] if s["ref"] == "Leviticus 19:18")
    assert lev["url"] == "https://www.sefaria.org/Leviticus.19.18"
    assert lev["language"] == "he+en"
    assert lev["verified"] is True
    assert turn["conversation"]["title"] == QUESTION.rstrip("?")
    stored = api.get(
        f"/conversations/{conversation_id}", headers=user["headers"]
    ).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][1]["content"] == answer["content"]
    assert "Leviticus 19:18" in answer["content"]


def test_list_is_newest_activity_first_and_paginated(
    api: httpx.Client, user: dict[str, Any]
) -> None:
    headers = user["headers"]
    ids = [_new(api, headers, title=f"Conversation {n}") for n in range(5)]
    # Activity in the oldest one moves it to the top.
    _ask(api, headers, ids[0], "Genesis 1:1")
    expected = [ids[0], ids[4], ids[3], ids[2], ids[1]]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/conversations", headers=headers, params=params).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3
    bad = api.get("/conversations", headers=headers, params={"cursor": "!!"})
    assert bad.status_code == 422


def test_rename_and_delete(api: httpx.Client, user: dict[str, Any]) -> None:
    headers = user["headers"]
    conversation_id = _new(api, headers)
    _ask(api, headers, conversation_id, QUESTION)
    renamed = api.patch(
        f"/conversations/{conversation_id}",
        headers=headers,
        json={"title": "  Love   your neighbor "},
    )
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "Love your neighbor"
    # A renamed conversation keeps its name when more questions come.
    _ask(api, headers, conversation_id, "What does Genesis 1:1 say?")
    got = api.get(f"/conversations/{conversation_id}", headers=headers).json()
    assert got["title"] == "Love your neighbor"
    assert (
        api.patch(
            f"/conversations/{conversation_id}", headers=headers, json={"title": "   "}
        ).status_code
        == 422
    )
    assert (
        api.delete(f"/conversations/{conversation_id}", headers=headers).status_code
        == 204
    )
    assert (
        api.get(f"/conversations/{conversation_id}", headers=headers).status_code == 404
    )
    assert (
        api.delete(f"/conversations/{conversation_id}", headers=headers).status_code
        == 404
    )


def test_another_users_conversation_is_404(api: httpx.Client) -> None:
    owner = register(api)
    intruder = register(api)
    conversation_id = _new(api, owner["headers"])
    turn = _ask(api, owner["headers"], conversation_id, QUESTION)
    path = f"/conversations/{conversation_id}"
    headers = intruder["headers"]
    assert api.get(path, headers=headers).status_code == 404
    assert api.get(f"{path}/export", headers=headers).status_code == 404
    assert (
        api.patch(path, headers=headers, json={"title": "Mine now"}).status_code == 404
    )
    assert (
        api.post(
            f"{path}/messages", headers=headers, json={"content": QUESTION}
        ).status_code
        == 404
    )
    assert api.delete(path, headers=headers).status_code == 404
    feedback = api.put(
        f"/messages/{turn['assistant_message']['id']}/feedback",
        headers=headers,
        json={"rating": "down"},
    )
    assert feedback.status_code == 404
    listed = api.get("/conversations", headers=headers).json()["items"]
    assert conversation_id not in [c["id"] for c in listed]
    # The owner still has everything, unchanged.
    kept = api.get(path, headers=owner["headers"]).json()
    assert len(kept["messages"]) == 2
    assert kept["title"] != "Mine now"


def test_intruder_changes_nothing_of_the_owner(api: httpx.Client) -> None:
    """Every route tried with another account's ids leaves its data as it was."""
    owner = register(api)
    intruder = register(api)["headers"]
    conversation_id = _new(api, owner["headers"])
    turn = _ask(api, owner["headers"], conversation_id, QUESTION)
    answer_id = turn["assistant_message"]["id"]
    feedback = f"/messages/{answer_id}/feedback"
    assert api.put(feedback, headers=owner["headers"], json={"rating": "up"}).is_success
    path = f"/conversations/{conversation_id}"
    before = api.get(path, headers=owner["headers"]).json()
    exported = api.get(f"{path}/export", headers=owner["headers"]).text
    assert before["title"]

    attempts = [
        ("GET", path, {}),
        ("GET", f"{path}/export", {}),
        ("PATCH", path, {"json": {"title": "Mine now"}}),
        ("POST", f"{path}/messages", {"json": {"content": QUESTION}}),
        ("POST", f"{path}/messages?stream=true", {"json": {"content": QUESTION}}),
        (
            "POST",
            f"{path}/messages",
            {
                "json": {"content": QUESTION},
                "headers": {**intruder, "Accept": "text/event-stream"},
            },
        ),
        ("PUT", feedback, {"json": {"rating": "down", "comment": "wrong"}}),
        ("DELETE", feedback, {}),
        ("DELETE", path, {}),
    ]
    for method, url, options in attempts:
        options.setdefault("headers", intruder)
        response = api.request(method, url, **options)
        assert response.status_code == 404, (method, url, response.text)
        assert before["title"] not in response.text
        assert QUESTION not in response.text

    after = api.get(path, headers=owner["headers"]).json()
    assert after == before
    assert after["messages"][1]["feedback"] == "up"
    assert api.get(f"{path}/export", headers=owner["headers"]).text == exported
    assert api.get("/feedback/export", headers=intruder).text == ""


def test_unknown_conversation_is_404(api: httpx.Client, user: dict[str, Any]) -> None:
    response = api.get(
        "/conversations/0123456789abcdef0123456789abcdef", headers=user["headers"]
    )
    assert response.status_code == 404


def test_markdown_export(api: httpx.Client, user: dict[str, Any]) -> None:
    headers = user["headers"]
    conversation_id = _new(api, headers)
    _ask(api, headers, conversation_id, QUESTION)
    response = api.get(f"/conversations/{conversation_id}/export", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert "attachment" in response.headers["content-disposition"]
    text = response.text
    assert text.startswith("# Where does the Torah say to love your neighbor")
    assert "## Learner, " in text
    assert "## Torah Study, " in text
    assert QUESTION in text
    assert "[Leviticus 19:18](https://www.sefaria.org/Leviticus.19.18)" in text
    assert " UTC" in text


def test_stream_saves_the_answer_as_it_goes(
    api: httpx.Client, user: dict[str, Any]
) -> None:
    headers = user["headers"]
    conversation_id = _new(api, headers)
    with api.stream(
        "POST",
        f"/conversations/{conversation_id}/messages",
        headers={**headers, "Accept": "text/event-stream"},
        json={"content": QUESTION},
    ) as response:
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        raw = "".join(response.iter_text())
    events = _events(raw)
    names = [name for name, _ in events]
    assert names[0] == "turn"
    assert names[1] == "sources"
    assert names[-2:] == ["verification", "done"]
    opening = events[0][1]
    assert opening["conversation_id"] == conversation_id
    streamed = "".join(data for name, data in events if name == "token")
    stored = api.get(f"/conversations/{conversation_id}", headers=headers).json()
    answer = stored["messages"][1]
    assert answer["id"] == opening["assistant_message_id"]
    assert answer["status"] == "complete"
    assert answer["content"] == streamed


def test_cut_stream_is_saved_as_interrupted_with_its_text(
    services: Services, library_settings: Settings, database_url: str
) -> None:
    settings = accounts_settings(library_settings, database_url)
    accounts, app = _serve(services, settings, TrickleModel(delay=0.05))
    try:
        with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            headers = register(client)["headers"]
            conversation_id = _new(client, headers)
            received = ""
            with client.stream(
                "POST",
                f"/conversations/{conversation_id}/messages?stream=true",
                headers=headers,
                json={"content": QUESTION},
            ) as response:
                for chunk in response.iter_text():
                    received += chunk
                    if received.count("event: token") >= 2:
                        break
            # The client has gone; the server notices and closes the turn.
            deadline = time.time() + 30
            while True:
                stored = client.get(
                    f"/conversations/{conversation_id}", headers=headers
                ).json()
                answer = stored["messages"][1]
                if answer["status"] != "streaming" or time.time() > deadline:
                    break
                time.sleep(0.2)
    finally:
        accounts.close()
    assert answer["status"] == "interrupted"
    assert answer["content"].startswith("Leviticus 19:18 commands to love")
    # Stopped early: far less than the 40 sentences the model would write.
    assert answer["content"].count("Leviticus 19:18") < 40
    assert stored["messages"][0]["status"] == "complete"


def test_provider_failure_mid_stream_keeps_the_partial_text(
    services: Services, library_settings: Settings, database_url: str
) -> None:
    settings = accounts_settings(library_settings, database_url)
    accounts, app = _serve(services, settings, TrickleModel(delay=0.0, fail=True))
    try:
        with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            headers = register(client)["headers"]
            conversation_id = _new(client, headers)
            with client.stream(
                "POST",
                f"/conversations/{conversation_id}/messages",
                headers={**headers, "Accept": "text/event-stream"},
                json={"content": QUESTION},
            ) as response:
                events = _events("".join(response.iter_text()))
            stored = client.get(f"/conversations/{conversation_id}", headers=headers)
    finally:
        accounts.close()
    assert events[-1][0] == "error"
    answer = stored.json()["messages"][1]
    assert answer["status"] == "interrupted"
    assert answer["content"].startswith("Leviticus 19:18 commands")
    assert "stopped mid-answer" in answer["error"]


def test_follow_up_is_rewritten_into_a_standalone_query(
    api: httpx.Client, user: dict[str, Any]
) -> None:
    headers = user["headers"]
    conversation_id = _new(api, headers)
    _ask(api, headers, conversation_id, "Genesis 1:1")
    turn = _ask(api, headers, conversation_id, "And what does Rashi say about it?")
    assert turn["query"] == "Rashi on Genesis 1:1"
    assert turn["user_message"]["query"] == "Rashi on Genesis 1:1"
    refs = [s["ref"] for s in turn["assistant_message"]["sources"]]
    assert refs and all(ref.startswith("Rashi on Genesis 1:1") for ref in refs)


def test_titles_from_first_message_with_content(
    api: httpx.Client, user: dict[str, Any]
) -> None:
    headers = user["headers"]
    conversation_id = _new(api, headers)
    assert (
        _ask(api, headers, conversation_id, "Shalom!")["conversation"]["title"] is None
    )
    hebrew = "מה אומרת התורה על אהבת הרע?"
    assert _ask(api, headers, conversation_id, hebrew)["conversation"][
        "title"
    ] == hebrew.rstrip("?")
    ref_only = _new(api, headers)
    assert (
        _ask(api, headers, ref_only, "gen 1:1")["conversation"]["title"]
        == "Genesis 1:1"
    )
    long = _new(api, headers)
    text = ("Tell me about the laws of Shabbat and what the Mishnah teaches " * 10)[
        :600
    ]
    title = _ask(api, headers, long, text)["conversation"]["title"]
    assert len(title) <= 61
    assert title.endswith("…")
    assert text.startswith(title[:-1])


def test_feedback_is_stored_replaced_and_exported(
    api: httpx.Client, user: dict[str, Any]
) -> None:
    headers = user["headers"]
    conversation_id = _new(api, headers)
    turn = _ask(api, headers, conversation_id, QUESTION)
    message_id = turn["assistant_message"]["id"]
    path = f"/messages/{message_id}/feedback"
    first = api.put(
        path, headers=headers, json={"rating": "down", "comment": "Too short"}
    )
    assert first.status_code == 200
    second = api.put(path, headers=headers, json={"rating": "up"})
    assert second.json()["rating"] == "up"
    assert api.put(path, headers=headers, json={"rating": "meh"}).status_code == 422
    question_id = turn["user_message"]["id"]
    assert (
        api.put(
            f"/messages/{question_id}/feedback", headers=headers, json={"rating": "up"}
        ).status_code
        == 404
    )
    exported = api.get("/feedback/export", headers=headers)
    records = [json.loads(line) for line in exported.text.splitlines()]
    assert len(records) == 1
    record = records[0]
    assert record["rating"] == "up"
    assert record["comment"] is None
    assert record["question"] == QUESTION
    assert "Leviticus 19:18" in record["refs"]


def test_bad_message_bodies_are_422(api: httpx.Client, user: dict[str, Any]) -> None:
    headers = user["headers"]
    conversation_id = _new(api, headers)
    path = f"/conversations/{conversation_id}/messages"
    for body in (
        {"content": "   "},
        {"content": "x" * 2001},
        {},
        {"content": "a\x00b"},
    ):
        assert api.post(path, headers=headers, json=body).status_code == 422
    unknown_book = {"content": QUESTION, "books": ["No Such Book"]}
    assert api.post(path, headers=headers, json=unknown_book).status_code == 422
    stored = api.get(f"/conversations/{conversation_id}", headers=headers).json()
    assert stored["messages"] == []


def test_deleting_a_conversation_removes_its_messages(
    server: tuple[httpx.Client, Accounts], user: dict[str, Any]
) -> None:
    from sqlalchemy import func, select

    from torah_study.db.models import Message, MessageSource

    api, accounts = server
    headers = user["headers"]
    conversation_id = _new(api, headers)
    turn = _ask(api, headers, conversation_id, QUESTION)
    answer_id = turn["assistant_message"]["id"]
    api.put(f"/messages/{answer_id}/feedback", headers=headers, json={"rating": "up"})
    api.delete(f"/conversations/{conversation_id}", headers=headers)
    with accounts.sessions() as db:
        messages = db.scalar(
            select(func.count()).where(Message.conversation_id == conversation_id)
        )
        sources = db.scalar(
            select(func.count()).where(MessageSource.message_id == answer_id)
        )
    assert messages == 0
    assert sources == 0


def test_token_counts_are_stored_with_the_answer(
    services: Services, library_settings: Settings, database_url: str
) -> None:
    settings = accounts_settings(library_settings, database_url)
    accounts, app = _serve(services, settings, CountedModel(delay=0.0))
    try:
        with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            headers = register(client)["headers"]
            turn = _ask(client, headers, _new(client, headers), QUESTION)
    finally:
        accounts.close()
    answer = turn["assistant_message"]
    assert answer["status"] == "complete"
    assert answer["provider"] == "trickle"
    assert answer["prompt_tokens"] == 640
    assert answer["completion_tokens"] == 12


def test_deleting_during_an_answer_is_a_clean_404(
    services: Services, library_settings: Settings, database_url: str
) -> None:
    settings = accounts_settings(library_settings, database_url)
    accounts, app = _serve(services, settings, TrickleModel(delay=0.05))
    try:
        with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            headers = register(client)["headers"]
            conversation_id = _new(client, headers)
            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = pool.submit(
                    client.post,
                    f"/conversations/{conversation_id}/messages",
                    headers=headers,
                    json={"content": QUESTION},
                )
                time.sleep(1.0)
                deleted = client.delete(
                    f"/conversations/{conversation_id}", headers=headers
                )
                response = pending.result(timeout=60)
    finally:
        accounts.close()
    assert deleted.status_code == 204
    assert response.status_code == 404
    assert "deleted" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/conversations/abc%00def",
        "/conversations/" + "g" * 32,
        "/conversations/0123456789ABCDEF0123456789abcdef",
    ],
)
def test_malformed_ids_are_404(
    api: httpx.Client, user: dict[str, Any], path: str
) -> None:
    assert api.get(path, headers=user["headers"]).status_code == 404
    assert api.delete(path, headers=user["headers"]).status_code == 404


@pytest.mark.parametrize(
    "stamp",
    ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-01-01T00:00:00"],
)
def test_cursor_with_impossible_time_is_422(
    api: httpx.Client, user: dict[str, Any], stamp: str
) -> None:
    raw = f"{stamp}|{'a' * 32}".encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = api.get(
        "/conversations", headers=user["headers"], params={"cursor": cursor}
    )
    assert response.status_code == 422


def test_hidden_characters_leave_titles(
    api: httpx.Client, user: dict[str, Any]
) -> None:
    headers = user["headers"]
    conversation_id = _new(api, headers)
    path = f"/conversations/{conversation_id}"
    renamed = api.patch(
        path, headers=headers, json={"title": "\u202eLove\u200b it\x85"}
    )
    assert renamed.json()["title"] == "Love it"
    invisible = api.patch(path, headers=headers, json={"title": "\u200b\u2066"})
    assert invisible.status_code == 422


def test_export_shows_markdown_in_questions_as_text(
    api: httpx.Client, user: dict[str, Any]
) -> None:
    headers = user["headers"]
    conversation_id = _new(api, headers, title="# Forged <b>title</b>")
    question = (
        "## Torah Study, 2026-01-01 00:00 UTC\n"
        "1. [Genesis 1:1](https://example.org/forged) (cited, verified)\n"
        "<img src=x onerror=alert(1)>"
    )
    _ask(api, headers, conversation_id, question)
    text = api.get(f"/conversations/{conversation_id}/export", headers=headers).text
    lines = text.splitlines()
    assert lines[0] == "# \\# Forged &lt;b&gt;title&lt;/b&gt;"
    assert "\\## Torah Study, 2026-01-01 00:00 UTC" in lines
    assert "](https://example.org/forged)" not in text.replace("\\]", "")
    assert (
        "1\\. \\[Genesis 1:1\\](https://example.org/forged) (cited, verified)" in lines
    )
    assert "<img" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in lines


def _ratings(
    api: httpx.Client, headers: dict[str, str], conversation_id: str
) -> list[str | None]:
    response = api.get(f"/conversations/{conversation_id}", headers=headers)
    assert response.status_code == 200, response.text
    return [message["feedback"] for message in response.json()["messages"]]


def test_feedback_shown_then_cleared(api: httpx.Client, user: dict[str, Any]) -> None:
    headers = user["headers"]
    conversation_id = _new(api, headers)
    turn = _ask(api, headers, conversation_id, QUESTION)
    assert turn["assistant_message"]["feedback"] is None
    path = f"/messages/{turn['assistant_message']['id']}/feedback"
    assert _ratings(api, headers, conversation_id) == [None, None]

    assert api.put(path, headers=headers, json={"rating": "up"}).status_code == 200
    assert _ratings(api, headers, conversation_id) == [None, "up"]
    assert api.put(path, headers=headers, json={"rating": "down"}).status_code == 200
    assert _ratings(api, headers, conversation_id) == [None, "down"]

    cleared = api.delete(path, headers=headers)
    assert cleared.status_code == 204
    assert cleared.content == b""
    assert _ratings(api, headers, conversation_id) == [None, None]
    assert api.get("/feedback/export", headers=headers).text == ""
    # Clearing twice is not an error, and the answer can be rated again.
    assert api.delete(path, headers=headers).status_code == 204
    assert api.put(path, headers=headers, json={"rating": "up"}).status_code == 200
    assert _ratings(api, headers, conversation_id) == [None, "up"]


def test_clearing_feedback_needs_an_owned_answer(api: httpx.Client) -> None:
    owner = register(api)
    intruder = register(api)
    conversation_id = _new(api, owner["headers"])
    turn = _ask(api, owner["headers"], conversation_id, QUESTION)
    answer_id = turn["assistant_message"]["id"]
    path = f"/messages/{answer_id}/feedback"
    api.put(path, headers=owner["headers"], json={"rating": "up"})

    assert api.delete(path, headers=intruder["headers"]).status_code == 404
    assert _ratings(api, owner["headers"], conversation_id) == [None, "up"]
    question_id = turn["user_message"]["id"]
    for message_id in (
        question_id,
        "0123456789abcdef0123456789abcdef",
        "not-an-id",
    ):
        response = api.delete(
            f"/messages/{message_id}/feedback", headers=owner["headers"]
        )
        assert response.status_code == 404, message_id


def test_conversation_reads_feedback_in_one_query(
    server: tuple[httpx.Client, Accounts], user: dict[str, Any]
) -> None:
    from sqlalchemy import event

    from torah_study.db.models import Feedback

    api, accounts = server
    headers = user["headers"]
    conversation_id = _new(api, headers)
    answers = [
        _ask(api, headers, conversation_id, question)["assistant_message"]["id"]
        for question in (QUESTION, "Genesis 1:1", "Psalms 23:1")
    ]
    for answer_id, rating in ((answers[0], "up"), (answers[2], "down")):
        api.put(
            f"/messages/{answer_id}/feedback", headers=headers, json={"rating": rating}
        )
    # A rating by someone else on the same answer is not the user's rating.
    other = register(api)["user"]["id"]
    with accounts.sessions.begin() as db:
        db.add(Feedback(message_id=answers[1], user_id=other, rating=-1))

    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(accounts.engine, "before_cursor_execute", record)
    try:
        ratings = _ratings(api, headers, conversation_id)
    finally:
        event.remove(accounts.engine, "before_cursor_execute", record)
    assert ratings == [None, "up", None, None, None, "down"]
    assert sum("FROM feedback" in s for s in statements) == 1
    assert sum("FROM message_sources" in s for s in statements) == 1


def test_stop_during_an_unfinished_sentence_is_prompt(
    services: Services, library_settings: Settings, database_url: str
) -> None:
    settings = accounts_settings(library_settings, database_url)
    # 300 pieces of 0.02 s: about six seconds before the sentence ends.
    model = UnfinishedSentenceModel(words=300, delay=0.02)
    accounts, app = _serve(services, settings, model)
    try:
        with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            headers = register(client)["headers"]
            conversation_id = _new(client, headers)

            with client.stream(
                "POST",
                f"/conversations/{conversation_id}/messages?stream=true",
                headers=headers,
                json={"content": QUESTION},
            ) as response:
                # Holding the iterator keeps the response open after the break.
                chunks = response.iter_text()
                received = ""
                for chunk in chunks:
                    received += chunk
                    if "event: turn" in received and "event: sources" in received:
                        break
                deadline = time.monotonic() + 10
                while model.requested < 3 and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert model.requested >= 3

            left_at = time.monotonic()
            while True:
                stored = client.get(
                    f"/conversations/{conversation_id}", headers=headers
                ).json()
                answer = stored["messages"][1]
                if answer["status"] != "streaming" or time.monotonic() > left_at + 30:
                    break
                time.sleep(0.05)
            saved_after = time.monotonic() - left_at

            assert model.closed.wait(10)
            stopped_at = model.requested
            time.sleep(0.3)
            requested_later = model.requested
    finally:
        accounts.close()

    assert answer["status"] == "interrupted"
    assert answer["content"] == ""
    assert answer["error"] == "The answer was stopped before it ended."
    # The model would need about six seconds and 301 pieces to finish.
    assert saved_after < 3.0
    assert stopped_at < 150
    assert requested_later == stopped_at


class LateStopPipeline:
    """Plays a client that leaves after the model's last piece, before done."""

    provider_name = "scripted"

    def run(
        self,
        question: str,
        filters: Filters = Filters(),
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        assert cancel is not None
        yield SourcesEvent([], "search")
        yield TokenEvent("A partial answer. ")
        cancel.set()
        yield VerificationEvent({"passed": True})
        yield DoneEvent("A partial answer. ", "search", "scripted", [])


def test_done_after_cancel_is_saved_interrupted(
    server: tuple[httpx.Client, Accounts], user: dict[str, Any]
) -> None:
    api, accounts = server
    headers = user["headers"]
    conversation_id = _new(api, headers)
    chat = ConversationChat(
        accounts.conversations,
        LateStopPipeline(),  # type: ignore[arg-type]
        lambda question, history: question,
    )
    run = chat.start(user["user"]["id"], conversation_id, QUESTION)
    kinds = [event.kind for event in run.events]
    assert run.cancel.is_set()
    assert "done" not in kinds
    stored = api.get(f"/conversations/{conversation_id}", headers=headers).json()
    answer = stored["messages"][1]
    assert answer["status"] == "interrupted"
    assert answer["content"] == "A partial answer. "
