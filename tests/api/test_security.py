"""Security headers, CORS and the per-account question limits of the HTTP API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from servers import accounts_settings, live_server, register
from torah_study.api.app import create_app
from torah_study.config import Settings
from torah_study.service import Services, build_accounts

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

QUESTION = "Where does the Torah say to love your neighbor as yourself?"
ALLOWED_ORIGIN = "https://study.example.org"
OTHER_ORIGIN = "https://attacker.example.net"
EXPECTED_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


@pytest.fixture()
def client(
    services: Services, library_settings: Settings, tmp_path: Path
) -> Iterator[TestClient]:
    with _client(services, library_settings, tmp_path) as test_client:
        yield test_client


@contextmanager
def _client(
    services: Services, library: Settings, tmp_path: Path, **changes: Any
) -> Iterator[TestClient]:
    # A folder without a build: / explains how to build the web app, and no
    # catch-all route for the app's files hides the routes added below.
    changes.setdefault("web_dir", tmp_path / "no-web-build")
    settings = accounts_settings(library, f"sqlite:///{tmp_path / 'a.db'}", **changes)
    accounts = build_accounts(settings, services.catalog)
    app = create_app(settings, services=services, accounts=accounts)

    @app.get("/test-failure")
    def failure() -> None:
        raise RuntimeError("a bug in a route")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    accounts.close()


def _assert_security_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    assert "camera=()" in response.headers["permissions-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers


# Security headers.


def test_headers_on_success_and_errors(client: TestClient) -> None:
    token = register(client)["headers"]
    cases = [
        ("GET", "/health", {}, 200),
        ("GET", "/no-such-page", {}, 404),
        ("GET", "/me", {}, 401),
        ("POST", "/auth/login", {"json": {}}, 422),
        ("POST", "/auth/login", {"content": b"x" * 100_000}, 413),
        ("GET", "/test-failure", {}, 500),
        ("GET", "/conversations", {"headers": token}, 200),
    ]
    for method, path, options, status in cases:
        response = client.request(method, path, **options)
        assert response.status_code == status, (path, response.text)
        _assert_security_headers(response)


def test_api_policy_allows_no_sources(client: TestClient) -> None:
    policy = client.get("/health").headers["content-security-policy"]
    assert policy.startswith("default-src 'none'")


def test_page_keeps_its_own_policy(client: TestClient) -> None:
    # Without a build, / is the page that explains how to build the web app.
    response = client.get("/")
    _assert_security_headers(response)
    policy = response.headers["content-security-policy"]
    script_sources = policy.split("script-src", 1)[1].split(";")[0].split()
    assert script_sources[0] == "'self'"
    assert "'unsafe-inline'" not in script_sources


def test_docs_policy_allows_their_cdn_only(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    _assert_security_headers(response)
    policy = response.headers["content-security-policy"]
    script_sources = policy.split("script-src", 1)[1].split(";")[0].split()
    assert "https://cdn.jsdelivr.net" in script_sources
    assert "'unsafe-inline'" not in script_sources
    assert any(source.startswith("'sha256-") for source in script_sources)
    assert client.get("/redoc").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_stream_carries_the_headers(client: TestClient) -> None:
    token = register(client)["headers"]
    with client.stream(
        "POST", "/chat/stream", json={"question": QUESTION}, headers=token
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        _assert_security_headers(response)
        body = "".join(response.iter_text())
    assert "event: done" in body


def test_hsts_only_behind_https(
    services: Services, library_settings: Settings, tmp_path: Path
) -> None:
    with _client(services, library_settings, tmp_path, behind_https=True) as client:
        for path in ("/health", "/no-such-page"):
            value = client.get(path).headers.get("strict-transport-security")
            assert value == "max-age=31536000; includeSubDomains", path


# CORS.


def _preflight(client: TestClient, origin: str) -> httpx.Response:
    return client.options(
        "/chat",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_cors_preflight_from_an_allowed_origin(
    services: Services, library_settings: Settings, tmp_path: Path
) -> None:
    origins = (ALLOWED_ORIGIN,)
    with _client(services, library_settings, tmp_path, cors_origins=origins) as client:
        response = _preflight(client, ALLOWED_ORIGIN)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        allowed = response.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed
        assert "content-type" in allowed
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in response.headers
        _assert_security_headers(response)

        simple = client.get("/health", headers={"Origin": ALLOWED_ORIGIN})
        assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_cors_ignores_other_origins(
    services: Services, library_settings: Settings, tmp_path: Path
) -> None:
    origins = (ALLOWED_ORIGIN,)
    with _client(services, library_settings, tmp_path, cors_origins=origins) as client:
        response = _preflight(client, OTHER_ORIGIN)
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers
        simple = client.get("/health", headers={"Origin": OTHER_ORIGIN})
        assert "access-control-allow-origin" not in simple.headers


def test_no_cors_by_default(client: TestClient) -> None:
    response = _preflight(client, ALLOWED_ORIGIN)
    assert "access-control-allow-origin" not in response.headers
    simple = client.get("/health", headers={"Origin": ALLOWED_ORIGIN})
    assert "access-control-allow-origin" not in simple.headers


@pytest.mark.parametrize(
    "value",
    ["*", '["*"]', "https://study.example.org/", "study.example.org", "HTTPS://A.org"],
)
def test_cors_setting_rejects_non_origins(value: str) -> None:
    with pytest.raises(ValidationError, match="cors_origins"):
        Settings(cors_origins=value, _env_file=None)  # type: ignore[call-arg]


def test_cors_setting_reads_a_list() -> None:
    settings = Settings(
        cors_origins='["https://a.example.org", "http://localhost:3000"]',
        _env_file=None,  # type: ignore[call-arg]
    )
    assert settings.cors_origins == ("https://a.example.org", "http://localhost:3000")


# Question limits.


def _ask_json(client: Any, token: dict[str, str]) -> int:
    response = client.post("/chat", json={"question": QUESTION}, headers=token)
    return int(response.status_code)


def _new_conversation(client: Any, token: dict[str, str]) -> str:
    response = client.post("/conversations", headers=token, json={})
    assert response.status_code == 201, response.text
    conversation_id: str = response.json()["id"]
    return conversation_id


def test_questions_per_minute_cover_every_route(
    services: Services, library_settings: Settings, tmp_path: Path
) -> None:
    with _client(
        services, library_settings, tmp_path, questions_per_minute=2
    ) as client:
        token = register(client)["headers"]
        conversation_id = _new_conversation(client, token)
        assert _ask_json(client, token) == 200
        with client.stream(
            "POST", "/chat/stream", json={"question": QUESTION}, headers=token
        ) as streamed:
            assert streamed.status_code == 200
            streamed.read()

        refused = client.post(
            f"/conversations/{conversation_id}/messages",
            json={"content": QUESTION},
            headers=token,
        )
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 61
        assert "limit reached: 2 per minute" in refused.json()["detail"]
        _assert_security_headers(refused)
        # The refused question left no message in the conversation.
        kept = client.get(f"/conversations/{conversation_id}", headers=token).json()
        assert kept["messages"] == []

        streamed_refusal = client.post(
            "/chat/stream", json={"question": QUESTION}, headers=token
        )
        assert streamed_refusal.status_code == 429
        assert _ask_json(client, token) == 429

        # Another account has its own count.
        assert _ask_json(client, register(client)["headers"]) == 200


def test_questions_per_day_survive_a_restart(
    services: Services, library_settings: Settings, tmp_path: Path
) -> None:
    changes = {"questions_per_minute": 0, "questions_per_day": 1}
    with _client(services, library_settings, tmp_path, **changes) as client:
        token = register(client)["headers"]
        assert _ask_json(client, token) == 200
        refused = client.post("/chat", json={"question": QUESTION}, headers=token)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 23 * 3600
        assert "limit reached: 1 per day" in refused.json()["detail"]
    # A new process on the same database prunes old events at start; the
    # day's count must survive the sign-in limiter's shorter window.
    with _client(services, library_settings, tmp_path, **changes) as client:
        assert _ask_json(client, token) == 429


def test_question_in_a_missing_conversation_is_not_counted(
    services: Services, library_settings: Settings, tmp_path: Path
) -> None:
    with _client(
        services, library_settings, tmp_path, questions_per_minute=1
    ) as client:
        owner = register(client)["headers"]
        other = register(client)["headers"]
        conversation_id = _new_conversation(client, owner)
        for _ in range(3):
            response = client.post(
                f"/conversations/{conversation_id}/messages",
                json={"content": QUESTION},
                headers=other,
            )
            assert response.status_code == 404
        assert _ask_json(client, other) == 200


def test_parallel_questions_stop_at_the_limit(
    services: Services, library_settings: Settings, empty_database_url: str
) -> None:
    """Questions sent together are each counted in one write transaction."""
    settings = accounts_settings(
        library_settings, empty_database_url, questions_per_minute=4
    )
    accounts = build_accounts(settings, services.catalog)
    app = create_app(settings, services=services, accounts=accounts)
    try:
        with live_server(app) as url, httpx.Client(base_url=url, timeout=120) as api:
            token = register(api)["headers"]
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=12) as pool:
                codes = list(pool.map(lambda _: _ask_json(api, token), range(12)))
            elapsed = time.monotonic() - started
    finally:
        accounts.close()
    if elapsed >= 55:
        pytest.skip(f"the requests took {elapsed:.0f} s, longer than the window")
    assert codes.count(200) == 4
    assert codes.count(429) == 8
