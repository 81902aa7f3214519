"""Password reset by a mailed code, against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from servers import TEST_PASSWORD, Mailbox, accounts_settings, live_server, register
from torah_study.api.app import create_app
from torah_study.config import Settings
from torah_study.service import Services, build_accounts

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

NEW_PASSWORD = "a brand new study password"


@pytest.fixture(scope="module")
def api(
    services: Services,
    library_settings: Settings,
    database_url: str,
    smtp_server: tuple[int, Mailbox],
) -> Iterator[tuple[httpx.Client, Mailbox]]:
    port, mailbox = smtp_server
    settings = accounts_settings(
        library_settings,
        database_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        login_limit_per_address=1000,
        code_limit_per_address=1000,
    )
    accounts = build_accounts(settings, services.catalog)
    app = create_app(settings, services=services, accounts=accounts)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, mailbox
    accounts.close()


def _forgot(client: httpx.Client, email: str) -> str:
    response = client.post("/auth/password/forgot", json={"email": email})
    assert response.status_code == 202, response.text
    challenge: str = response.json()["challenge_id"]
    return challenge


def test_reset_sets_the_password_and_ends_sign_ins(
    api: tuple[httpx.Client, Mailbox],
) -> None:
    client, mailbox = api
    account = register(client)
    challenge = _forgot(client, account["email"].upper())
    message = mailbox.wait_for(account["email"])
    assert "reset" in message["Subject"]
    code = mailbox.code_for(account["email"])
    response = client.post(
        "/auth/password/reset",
        json={"challenge_id": challenge, "code": code, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert response.json()["user"]["verified"] is True
    assert client.get("/me", headers=account["headers"]).status_code == 401
    old = {"email": account["email"], "password": TEST_PASSWORD}
    assert client.post("/auth/login", json=old).status_code == 401
    new = {"email": account["email"], "password": NEW_PASSWORD}
    assert client.post("/auth/login", json=new).status_code == 200
    again = client.post(
        "/auth/password/reset",
        json={
            "challenge_id": challenge,
            "code": code,
            "new_password": "yet another one",
        },
    )
    assert again.status_code == 401


def test_unknown_address_gets_the_same_reply_and_no_mail(
    api: tuple[httpx.Client, Mailbox],
) -> None:
    client, mailbox = api
    known = register(client)
    stranger = f"nobody-{uuid.uuid4().hex[:8]}@example.org"
    before = len(mailbox.messages)
    unknown = client.post("/auth/password/forgot", json={"email": stranger})
    time.sleep(0.5)
    assert len(mailbox.messages) == before
    existing = client.post("/auth/password/forgot", json={"email": known["email"]})
    assert unknown.status_code == existing.status_code == 202
    assert set(unknown.json()) == set(existing.json())
    assert unknown.json()["expires_in"] == existing.json()["expires_in"]
    guess = client.post(
        "/auth/password/reset",
        json={
            "challenge_id": unknown.json()["challenge_id"],
            "code": "123456",
            "new_password": NEW_PASSWORD,
        },
    )
    assert guess.status_code == 401


def test_weak_password_keeps_the_code_usable(
    api: tuple[httpx.Client, Mailbox],
) -> None:
    client, mailbox = api
    account = register(client)
    challenge = _forgot(client, account["email"])
    code = mailbox.code_for(account["email"])
    weak = client.post(
        "/auth/password/reset",
        json={"challenge_id": challenge, "code": code, "new_password": "short"},
    )
    assert weak.status_code == 422
    strong = client.post(
        "/auth/password/reset",
        json={"challenge_id": challenge, "code": code, "new_password": NEW_PASSWORD},
    )
    assert strong.status_code == 200


def test_wrong_code_is_401_and_a_reset_code_cannot_sign_in(
    api: tuple[httpx.Client, Mailbox],
) -> None:
    client, mailbox = api
    account = register(client)
    challenge = _forgot(client, account["email"])
    code = mailbox.code_for(account["email"])
    wrong = "000000" if code != "000000" else "111111"
    response = client.post(
        "/auth/password/reset",
        json={"challenge_id": challenge, "code": wrong, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 401
    as_login = client.post(
        "/auth/verify", json={"challenge_id": challenge, "code": code}
    )
    assert as_login.status_code == 401


def test_reset_needs_a_mail_server(
    services: Services, library_settings: Settings, empty_database_url: str
) -> None:
    settings = accounts_settings(library_settings, empty_database_url)
    accounts = build_accounts(settings, services.catalog)
    app = create_app(settings, services=services, accounts=accounts)
    try:
        with live_server(app) as url, httpx.Client(base_url=url) as client:
            response = client.post(
                "/auth/password/forgot", json={"email": "ruth@example.org"}
            )
    finally:
        accounts.close()
    assert response.status_code == 503
