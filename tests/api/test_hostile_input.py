"""Hostile requests against a real uvicorn server: each gets a clear 4xx.

Every case here is malformed or abusive input that a client could send.
The service must respond with a 4xx whose JSON body has a ``detail``, and
never with a 500 or a dropped connection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from servers import accounts_settings, live_server, register
from torah_study.api.app import create_app
from torah_study.api.schemas import MAX_QUESTION_CHARS
from torah_study.config import Settings
from torah_study.service import Services

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

# The default MAX_BODY_BYTES, which these settings keep.
BODY_LIMIT = 65_536
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Hostile:
    """One hostile request and the status it must get."""

    name: str
    method: str
    path: str
    status: int
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] | None = None
    # Text the JSON detail must contain, to show the error names the cause.
    detail: str = ""


def _json(text: str) -> bytes:
    return text.encode("utf-8")


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _nested_question(depth: int) -> bytes:
    # Nesting that json.loads accepts, in the place of a string, so the
    # validation error carries the whole nested value as its input.
    return b'{"question": ' + _nested(depth) + b"}"


CASES = [
    Hostile(
        "declared oversized body",
        "POST",
        "/chat",
        413,
        content=b'{"question": "' + b"a" * (BODY_LIMIT + 1) + b'"}',
        headers=JSON,
        detail="larger than",
    ),
    Hostile(
        "invalid UTF-8 in the JSON body",
        "POST",
        "/chat",
        400,
        content=b'{"question": "love \xff\xfe your neighbor"}',
        headers=JSON,
    ),
    Hostile(
        "control character in a question",
        "POST",
        "/chat",
        422,
        content=_json('{"question": "love\\u0007 your neighbor"}'),
        headers=JSON,
        detail="control characters",
    ),
    Hostile(
        "NUL in a question",
        "POST",
        "/chat",
        422,
        content=_json('{"question": "love\\u0000 your neighbor"}'),
        headers=JSON,
        detail="control characters",
    ),
    Hostile(
        "lone surrogate in a question",
        "POST",
        "/chat",
        422,
        content=_json('{"question": "love \\ud800 your neighbor"}'),
        headers=JSON,
        detail="unicode",
    ),
    Hostile(
        "lone surrogate in a message",
        "POST",
        "/conversations/{conversation}/messages",
        422,
        content=_json('{"content": "love \\udfff your neighbor"}'),
        headers=JSON,
        detail="unicode",
    ),
    Hostile(
        "control character in a title",
        "POST",
        "/conversations",
        422,
        content=_json('{"title": "Shabbat\\u001b[31m"}'),
        headers=JSON,
        detail="control characters",
    ),
    Hostile(
        "lone surrogate in a new title",
        "PATCH",
        "/conversations/{conversation}",
        422,
        content=_json('{"title": "Shabbat \\udbff"}'),
        headers=JSON,
        detail="unicode",
    ),
    Hostile(
        "NUL in a password",
        "POST",
        "/auth/login",
        422,
        content=_json('{"email": "a@example.org", "password": "x\\u0000y"}'),
        headers=JSON,
        detail="control characters",
    ),
    Hostile(
        "question of 10,000 characters",
        "POST",
        "/chat",
        422,
        content=_json('{"question": "' + "why " * 2500 + '"}'),
        headers=JSON,
        detail=f"at most {MAX_QUESTION_CHARS} characters",
    ),
    Hostile(
        "100,000 levels of nesting",
        "POST",
        "/chat",
        413,
        content=_nested(100_000),
        headers=JSON,
    ),
    Hostile(
        "30,000 levels of nesting under the size limit",
        "POST",
        "/chat",
        400,
        content=_nested(30_000),
        headers=JSON,
    ),
    Hostile(
        "nested question just under the parser's limit",
        "POST",
        "/chat",
        422,
        content=_nested_question(900),
        headers=JSON,
    ),
    Hostile(
        "nested title just under the parser's limit",
        "POST",
        "/conversations",
        422,
        content=b'{"title": ' + _nested(900) + b"}",
        headers=JSON,
    ),
    Hostile(
        "text/plain body",
        "POST",
        "/chat",
        422,
        content=_json('{"question": "love your neighbor"}'),
        headers={"Content-Type": "text/plain"},
    ),
    Hostile(
        "form body",
        "POST",
        "/chat",
        422,
        content=b"question=love+your+neighbor",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    Hostile(
        "no content type",
        "POST",
        "/chat",
        422,
        content=_json('{"question": "love your neighbor"}'),
    ),
    Hostile(
        "invalid JSON",
        "POST",
        "/chat",
        422,
        content=b'{"question": "love your neighbor",',
        headers=JSON,
        detail="JSON",
    ),
    Hostile(
        "empty body",
        "POST",
        "/chat",
        422,
        content=b"",
        headers=JSON,
    ),
    Hostile(
        "array instead of an object",
        "POST",
        "/chat",
        422,
        content=_json('["love your neighbor"]'),
        headers=JSON,
    ),
    Hostile(
        "string instead of an object",
        "POST",
        "/auth/register",
        422,
        content=_json('"learner@example.org"'),
        headers=JSON,
    ),
    Hostile(
        "number with 5,000 digits",
        "POST",
        "/chat",
        400,
        content=_json('{"question": ' + "9" * 5000 + "}"),
        headers=JSON,
    ),
    Hostile(
        "float too large for a double",
        "POST",
        "/chat",
        422,
        content=_json('{"question": 1e999999}'),
        headers=JSON,
    ),
    Hostile(
        "huge integer in a query",
        "GET",
        "/conversations",
        422,
        params={"limit": "9" * 5000},
    ),
    Hostile(
        "huge context",
        "GET",
        "/texts/Genesis 1:1",
        422,
        params={"context": "99999999999999999999999"},
    ),
    Hostile(
        "path traversal in a ref",
        "GET",
        "/texts/../../etc/passwd",
        404,
    ),
    Hostile(
        "encoded path traversal in a ref",
        "GET",
        "/texts/..%2F..%2Fetc%2Fpasswd",
        404,
    ),
    Hostile(
        "double-encoded path traversal in a ref",
        "GET",
        "/texts/%252e%252e%252fetc%252fpasswd",
        404,
    ),
    Hostile(
        "ref of 8,000 characters",
        "GET",
        "/texts/Genesis " + "1:" * 3999 + "1",
        404,
    ),
    Hostile(
        "NUL in a ref",
        "GET",
        "/texts/Genesis%001:1",
        404,
    ),
    Hostile(
        "NUL in a search query",
        "GET",
        "/search",
        422,
        params={"q": "love\x00neighbor"},
        detail="control characters",
    ),
    Hostile(
        "NUL in a conversation id",
        "GET",
        "/conversations/abc%00def",
        404,
    ),
    Hostile(
        "invalid date in the calendar",
        "GET",
        "/calendar/parashah",
        422,
        params={"date": "5786-13-45"},
    ),
    Hostile(
        "year past the calendar's range",
        "GET",
        "/calendar/parashah",
        422,
        params={"date": "9999-12-31"},
        detail="too late",
    ),
]


@pytest.fixture(scope="module")
def api(
    services: Services,
    library_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[httpx.Client]:
    """A signed-in client of a real uvicorn server (accounts in SQLite)."""
    database = tmp_path_factory.mktemp("accounts") / "torah-study.db"
    settings = accounts_settings(
        library_settings, f"sqlite:///{database}", max_body_bytes=BODY_LIMIT
    )
    app = create_app(settings, services=services)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        client.headers.update(register(client)["headers"])
        yield client


@pytest.fixture(scope="module")
def conversation(api: httpx.Client) -> str:
    response = api.post("/conversations", json={})
    assert response.status_code == 201
    conversation_id: str = response.json()["id"]
    return conversation_id


def _send(api: httpx.Client, case: Hostile, conversation: str) -> httpx.Response:
    path = case.path.replace("{conversation}", conversation)
    # A raw target keeps "..", "%2F" and "%00" as sent, as a hostile client
    # would send them, instead of the normalised URL httpx would build.
    url = httpx.URL(str(api.base_url).rstrip("/") + "/")
    request = api.build_request(
        case.method,
        url.copy_with(raw_path=path.replace(" ", "%20").encode()),
        content=case.content,
        headers=case.headers,
        params=case.params,
    )
    if case.content is None:
        request.headers.pop("Content-Type", None)
    elif not case.headers:
        # httpx adds no content type for raw bytes; make sure none is sent.
        request.headers.pop("Content-Type", None)
    return api.send(request)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_request_is_a_clear_4xx(
    api: httpx.Client, conversation: str, case: Hostile
) -> None:
    started = time.perf_counter()
    response = _send(api, case, conversation)
    elapsed = time.perf_counter() - started
    assert response.status_code == case.status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body: Any = response.json()
    assert "detail" in body
    assert case.detail in str(body["detail"])
    # A hostile request is rejected quickly, not after heavy work.
    assert elapsed < 10
    assert "root:" not in response.text


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_number_gets_strict_json(api: httpx.Client, number: str) -> None:
    def reject(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    response = api.post(
        "/chat", content=_json(f'{{"question": {number}}}'), headers=JSON
    )
    assert response.status_code == 422
    body = json.loads(response.text, parse_constant=reject)
    assert number in str(body["detail"])


def test_chunked_oversized_body_is_413(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"question": "'
        for _ in range(100):
            yield b"a" * 1000
        yield b'"}'

    response = api.post("/chat", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def test_unknown_query_parameters_are_ignored(api: httpx.Client) -> None:
    # FastAPI ignores query parameters a route does not declare, as most
    # HTTP APIs do, so a request with an extra one still succeeds.
    response = api.get("/texts/Genesis 1:1", params={"unknown": "1", "debug": "true"})
    assert response.status_code == 200
    assert response.json()["ref"] == "Genesis 1:1"


def test_server_still_answers_after_hostile_input(api: httpx.Client) -> None:
    for case in CASES:
        _send(api, case, "0" * 32)
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
