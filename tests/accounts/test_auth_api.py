"""Registration, sign-in, tokens and revocation over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import time
import unicodedata
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from servers import (
    TEST_PASSWORD,
    TEST_SECRET,
    accounts_settings,
    live_server,
    register,
)
from torah_study.accounts.tokens import SecretError, resolve_secret
from torah_study.api.app import create_app
from torah_study.config import Settings
from torah_study.service import Services, build_accounts

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


@pytest.fixture(scope="module")
def api(
    services: Services, library_settings: Settings, database_url: str
) -> Iterator[httpx.Client]:
    settings = accounts_settings(
        library_settings, database_url, login_limit_per_address=1000
    )
    accounts = build_accounts(settings, services.catalog)
    app = create_app(settings, services=services, accounts=accounts)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client
    accounts.close()


def _email() -> str:
    return f"learner-{uuid.uuid4().hex[:10]}@example.org"


def test_register_returns_tokens_and_user(api: httpx.Client) -> None:
    email = _email()
    response = api.post(
        "/auth/register", json={"email": email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["user"]["email"] == email
    assert body["user"]["verified"] is False
    assert body["expires_in"] == 15 * 60
    assert response.headers["cache-control"] == "no-store"
    me = api.get("/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == email


def test_duplicate_email_is_409_whatever_the_case(api: httpx.Client) -> None:
    email = _email()
    register(api, email)
    again = api.post(
        "/auth/register", json={"email": email.upper(), "password": TEST_PASSWORD}
    )
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]


@pytest.mark.parametrize(
    "password",
    ["short", "password123", "aaaaaaaaaaaaaa", "          x", "x" * 1025],
)
def test_weak_password_is_422(api: httpx.Client, password: str) -> None:
    response = api.post(
        "/auth/register", json={"email": _email(), "password": password}
    )
    assert response.status_code == 422


def test_password_equal_to_email_is_422(api: httpx.Client) -> None:
    email = f"learner{uuid.uuid4().hex[:8]}@example.org"
    response = api.post("/auth/register", json={"email": email, "password": email})
    assert response.status_code == 422


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "x@localhost", "x@y.test"])
def test_invalid_email_is_422(api: httpx.Client, email: str) -> None:
    response = api.post(
        "/auth/register", json={"email": email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 422


def test_login_ok_with_any_case(api: httpx.Client) -> None:
    account = register(api)
    response = api.post(
        "/auth/login",
        json={"email": account["email"].upper(), "password": TEST_PASSWORD},
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert (
        api.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )


def test_wrong_password_and_unknown_user_get_the_same_401(api: httpx.Client) -> None:
    account = register(api)
    wrong = api.post(
        "/auth/login", json={"email": account["email"], "password": "not the password"}
    )
    unknown = api.post(
        "/auth/login", json={"email": _email(), "password": "not the password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "Incorrect email or password."}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/me"),
        ("POST", "/chat"),
        ("POST", "/chat/stream"),
        ("GET", "/search?q=shabbat"),
        ("GET", "/texts/Genesis 1:1"),
        ("GET", "/conversations"),
        ("POST", "/conversations"),
        ("POST", "/auth/logout"),
        ("POST", "/me/password"),
        ("GET", "/feedback/export"),
    ],
)
def test_protected_endpoints_need_a_token(
    api: httpx.Client, method: str, path: str
) -> None:
    response = api.request(method, path, json={"question": "What is Shabbat?"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_open_endpoints_need_no_token(api: httpx.Client) -> None:
    assert api.get("/health").status_code == 200
    assert api.get("/openapi.json").status_code == 200


def test_garbage_and_forged_tokens_are_401(api: httpx.Client) -> None:
    account = register(api)
    forged = jwt.encode(
        jwt.decode(account["access_token"], options={"verify_signature": False}),
        "another-secret-of-enough-length-to-sign-tokens",
        algorithm="HS256",
    )
    for token in ("garbage", forged, account["refresh_token"]):
        response = api.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token


def test_expired_token_is_rejected(api: httpx.Client) -> None:
    account = register(api)
    claims = jwt.decode(
        account["access_token"], TEST_SECRET, algorithms=["HS256"], issuer="torah-study"
    )
    past = datetime.now(UTC) - timedelta(hours=1)
    claims["iat"] = int((past - timedelta(minutes=15)).timestamp())
    claims["exp"] = int(past.timestamp())
    expired = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    response = api.get("/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_token_after_logout_is_rejected(api: httpx.Client) -> None:
    account = register(api)
    headers = account["headers"]
    assert api.get("/me", headers=headers).status_code == 200
    assert api.post("/auth/logout", headers=headers).status_code == 204
    assert api.get("/me", headers=headers).status_code == 401
    refreshed = api.post(
        "/auth/refresh", json={"refresh_token": account["refresh_token"]}
    )
    assert refreshed.status_code == 401


def test_logout_ends_only_that_sign_in(api: httpx.Client) -> None:
    account = register(api)
    other = api.post(
        "/auth/login", json={"email": account["email"], "password": TEST_PASSWORD}
    ).json()
    api.post("/auth/logout", headers=account["headers"])
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    assert api.get("/me", headers=other_headers).status_code == 200


def test_token_after_password_change_is_rejected(api: httpx.Client) -> None:
    account = register(api)
    second = api.post(
        "/auth/login", json={"email": account["email"], "password": TEST_PASSWORD}
    ).json()
    new_password = "an even longer study password"
    changed = api.post(
        "/me/password",
        headers=account["headers"],
        json={"current_password": TEST_PASSWORD, "new_password": new_password},
    )
    assert changed.status_code == 200
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert api.get("/me", headers=account["headers"]).status_code == 401
    second_headers = {"Authorization": f"Bearer {second['access_token']}"}
    assert api.get("/me", headers=second_headers).status_code == 401
    assert api.get("/me", headers=fresh).status_code == 200
    old_login = api.post(
        "/auth/login", json={"email": account["email"], "password": TEST_PASSWORD}
    )
    assert old_login.status_code == 401
    new_login = api.post(
        "/auth/login", json={"email": account["email"], "password": new_password}
    )
    assert new_login.status_code == 200


def test_password_change_needs_the_current_password(api: httpx.Client) -> None:
    account = register(api)
    response = api.post(
        "/me/password",
        headers=account["headers"],
        json={"current_password": "wrong password", "new_password": "another long one"},
    )
    assert response.status_code == 403
    weak = api.post(
        "/me/password",
        headers=account["headers"],
        json={"current_password": TEST_PASSWORD, "new_password": "short"},
    )
    assert weak.status_code == 422
    assert api.get("/me", headers=account["headers"]).status_code == 200


def test_refresh_rotates_and_reuse_ends_the_sign_in(api: httpx.Client) -> None:
    account = register(api)
    first = api.post("/auth/refresh", json={"refresh_token": account["refresh_token"]})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != account["refresh_token"]
    new_headers = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert api.get("/me", headers=new_headers).status_code == 200
    # The old refresh token comes back: treat the sign-in as stolen.
    reuse = api.post("/auth/refresh", json={"refresh_token": account["refresh_token"]})
    assert reuse.status_code == 401
    assert api.get("/me", headers=new_headers).status_code == 401
    later = api.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert later.status_code == 401


def test_failed_logins_are_limited_per_account(api: httpx.Client) -> None:
    account = register(api)
    bad = {"email": account["email"], "password": "not the password"}
    codes = [api.post("/auth/login", json=bad).status_code for _ in range(5)]
    assert codes == [401] * 5
    limited = api.post("/auth/login", json=bad)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    # Even the right password waits until the window passes.
    right = {"email": account["email"], "password": TEST_PASSWORD}
    assert api.post("/auth/login", json=right).status_code == 429
    # An unknown email gets exactly the same treatment.
    stranger = {"email": _email(), "password": "not the password"}
    unknown = [api.post("/auth/login", json=stranger).status_code for _ in range(6)]
    assert unknown == [401] * 5 + [429]


def test_failed_logins_are_limited_per_address(
    services: Services, library_settings: Settings, database_url: str
) -> None:
    settings = accounts_settings(
        library_settings, database_url, login_limit_per_address=3
    )
    accounts = build_accounts(settings, services.catalog)
    app = create_app(settings, services=services, accounts=accounts)
    try:
        with live_server(app) as url, httpx.Client(base_url=url) as client:
            codes = [
                client.post(
                    "/auth/login", json={"email": _email(), "password": "wrong one"}
                ).status_code
                for _ in range(4)
            ]
    finally:
        accounts.close()
    assert codes[-1] == 429


def test_production_refuses_a_missing_or_placeholder_secret(tmp_path: object) -> None:
    base = {"data_dir": tmp_path, "_env_file": None}
    with pytest.raises(SecretError):
        resolve_secret(Settings(environment="production", **base))  # type: ignore[arg-type]
    with pytest.raises(SecretError):
        resolve_secret(
            Settings(environment="production", jwt_secret="change-me", **base)  # type: ignore[arg-type]
        )
    for weak in ("a" * 40, " " * 40, "change-me"):
        with pytest.raises(SecretError):
            resolve_secret(
                Settings(environment="production", jwt_secret=weak, **base)  # type: ignore[arg-type]
            )
    strong = secrets.token_urlsafe(40)
    assert (
        resolve_secret(Settings(environment="production", jwt_secret=strong, **base))  # type: ignore[arg-type]
        == strong
    )


def test_development_secret_is_created_once(tmp_path: object) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[arg-type]
    first = resolve_secret(settings)
    assert len(first) >= 32
    assert resolve_secret(settings) == first


def test_service_refuses_to_start_in_production_without_secret(
    services: Services, library_settings: Settings, database_url: str
) -> None:
    settings = accounts_settings(
        library_settings, database_url, environment="production", jwt_secret=None
    )
    with pytest.raises(SecretError):
        build_accounts(settings, services.catalog)


def test_access_token_lifetime_follows_the_setting(api: httpx.Client) -> None:
    account = register(api)
    claims = jwt.decode(
        account["access_token"], TEST_SECRET, algorithms=["HS256"], issuer="torah-study"
    )
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert claims["typ"] == "access"
    assert len(claims["jti"]) == 32
    assert abs(claims["iat"] - time.time()) < 120


def test_parallel_wrong_passwords_stop_at_the_limit(api: httpx.Client) -> None:
    """Guesses sent together are counted before any password is checked."""
    account = register(api)
    bad = {"email": account["email"], "password": "not the password"}
    with ThreadPoolExecutor(max_workers=15) as pool:
        codes = list(
            pool.map(lambda _: api.post("/auth/login", json=bad).status_code, range(15))
        )
    assert sorted(set(codes)) == [401, 429]
    assert codes.count(401) == 5


def test_password_in_another_unicode_form_signs_in(api: httpx.Client) -> None:
    composed = "Café résumé naïve לומדים"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    email = _email()
    created = api.post("/auth/register", json={"email": email, "password": composed})
    assert created.status_code == 201
    login = api.post("/auth/login", json={"email": email, "password": decomposed})
    assert login.status_code == 200


def test_oversized_body_is_413(api: httpx.Client) -> None:
    response = api.post(
        "/auth/login",
        content=b'{"email": "' + b"a" * 200_000 + b'", "password": "x"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


def test_chunked_oversized_body_is_413(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "'
        for _ in range(100):
            yield b"a" * 1000
        yield b'", "password": "x"}'

    response = api.post(
        "/auth/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_registrations_are_limited_per_address(
    services: Services, library_settings: Settings, empty_database_url: str
) -> None:
    settings = accounts_settings(
        library_settings, empty_database_url, register_limit_per_address=2
    )
    accounts = build_accounts(settings, services.catalog)
    app = create_app(settings, services=services, accounts=accounts)
    try:
        with live_server(app) as url, httpx.Client(base_url=url) as client:
            codes = [
                client.post(
                    "/auth/register",
                    json={"email": _email(), "password": TEST_PASSWORD},
                ).status_code
                for _ in range(3)
            ]
    finally:
        accounts.close()
    assert codes == [201, 201, 429]


def test_fullwidth_address_is_the_same_account(api: httpx.Client) -> None:
    local = f"learner{uuid.uuid4().hex[:8]}"
    register(api, f"{local}@example.org")
    fullwidth = "".join(chr(ord(ch) + 0xFEE0) for ch in local) + "@example.org"
    again = api.post(
        "/auth/register", json={"email": fullwidth, "password": TEST_PASSWORD}
    )
    assert again.status_code == 409
