"""Email-code sign-in against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from servers import TEST_PASSWORD, Mailbox, accounts_settings, free_port, live_server
from torah_study.api.app import create_app
from torah_study.config import Settings
from torah_study.db.models import EmailCode, User
from torah_study.service import Accounts, Services, build_accounts

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


@pytest.fixture(scope="module")
def mfa(
    services: Services,
    library_settings: Settings,
    database_url: str,
    smtp_server: tuple[int, Mailbox],
) -> Iterator[tuple[httpx.Client, Mailbox, Accounts]]:
    port, mailbox = smtp_server
    settings = accounts_settings(
        library_settings,
        database_url,
        mfa_enabled=True,
        mfa_max_attempts=3,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        mail_from="Torah Study <codes@example.org>",
        login_limit_per_address=1000,
        code_limit_per_address=1000,
    )
    accounts = build_accounts(settings, services.catalog)
    app = create_app(settings, services=services, accounts=accounts)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, mailbox, accounts
    accounts.close()


def _email() -> str:
    return f"learner-{uuid.uuid4().hex[:10]}@example.org"


def _start(client: httpx.Client, path: str, email: str) -> str:
    response = client.post(path, json={"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 202, response.text
    body = response.json()
    assert "access_token" not in body
    assert body["status"] == "code_sent"
    assert body["expires_in"] == 600
    challenge: str = body["challenge_id"]
    return challenge


def test_registration_mails_a_code_that_gives_tokens(
    mfa: tuple[httpx.Client, Mailbox, Accounts],
) -> None:
    client, mailbox, _ = mfa
    email = _email()
    challenge = _start(client, "/auth/register", email)
    message = mailbox.wait_for(email)
    assert message["From"] == "Torah Study <codes@example.org>"
    assert "code" in message["Subject"]
    code = mailbox.code_for(email)
    response = client.post(
        "/auth/verify", json={"challenge_id": challenge, "code": code}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["verified"] is True
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get("/me", headers=headers).status_code == 200
    # A code works once.
    again = client.post("/auth/verify", json={"challenge_id": challenge, "code": code})
    assert again.status_code == 401


def test_login_needs_the_mailed_code(
    mfa: tuple[httpx.Client, Mailbox, Accounts],
) -> None:
    client, mailbox, _ = mfa
    email = _email()
    first = _start(client, "/auth/register", email)
    client.post(
        "/auth/verify", json={"challenge_id": first, "code": mailbox.code_for(email)}
    )
    challenge = _start(client, "/auth/login", email)
    code = mailbox.code_for(email)
    response = client.post(
        "/auth/verify",
        json={"challenge_id": challenge, "code": f"{code[:3]} {code[3:]}"},
    )
    assert response.status_code == 200


def test_wrong_code_then_too_many_attempts(
    mfa: tuple[httpx.Client, Mailbox, Accounts],
) -> None:
    client, mailbox, _ = mfa
    email = _email()
    challenge = _start(client, "/auth/register", email)
    code = mailbox.code_for(email)
    wrong = "000000" if code != "000000" else "111111"
    first = client.post("/auth/verify", json={"challenge_id": challenge, "code": wrong})
    assert first.status_code == 401
    assert first.json()["detail"] == "The code is wrong or has expired."
    for _ in range(2):
        client.post("/auth/verify", json={"challenge_id": challenge, "code": wrong})
    # Three wrong tries used the code up: even the right code fails now.
    final = client.post("/auth/verify", json={"challenge_id": challenge, "code": code})
    assert final.status_code == 401
    assert "sign in again" in final.json()["detail"]


def test_expired_code_is_rejected(
    mfa: tuple[httpx.Client, Mailbox, Accounts],
) -> None:
    client, mailbox, accounts = mfa
    email = _email()
    challenge = _start(client, "/auth/register", email)
    code = mailbox.code_for(email)
    with accounts.sessions.begin() as db:
        db.execute(
            update(EmailCode)
            .where(EmailCode.id == challenge)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = client.post(
        "/auth/verify", json={"challenge_id": challenge, "code": code}
    )
    assert response.status_code == 401
    with accounts.sessions() as db:
        user = db.query(User).filter(User.email_key == email.lower()).one()
        assert user.verified is False


def test_unknown_challenge_is_401(mfa: tuple[httpx.Client, Mailbox, Accounts]) -> None:
    client, _, _ = mfa
    response = client.post(
        "/auth/verify", json={"challenge_id": uuid.uuid4().hex, "code": "123456"}
    )
    assert response.status_code == 401


def test_wrong_password_sends_no_code(
    mfa: tuple[httpx.Client, Mailbox, Accounts],
) -> None:
    client, mailbox, _ = mfa
    email = _email()
    _start(client, "/auth/register", email)
    mailbox.wait_for(email)
    before = len(mailbox.messages)
    response = client.post(
        "/auth/login", json={"email": email, "password": "wrong pass"}
    )
    assert response.status_code == 401
    assert len(mailbox.messages) == before


def test_unreachable_mail_server_is_503_and_creates_no_account(
    services: Services, library_settings: Settings, database_url: str
) -> None:
    settings = accounts_settings(
        library_settings,
        database_url,
        mfa_enabled=True,
        smtp_host="127.0.0.1",
        smtp_port=free_port(),  # nothing listens here
        smtp_security="none",
        smtp_timeout_seconds=2,
    )
    accounts = build_accounts(settings, services.catalog)
    app = create_app(settings, services=services, accounts=accounts)
    email = _email()
    try:
        with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            response = client.post(
                "/auth/register", json={"email": email, "password": TEST_PASSWORD}
            )
            assert response.status_code == 503
            with accounts.sessions() as db:
                assert db.query(User).filter(User.email_key == email).count() == 0
    finally:
        accounts.close()


def test_codes_need_a_mail_server(
    services: Services, library_settings: Settings, database_url: str
) -> None:
    settings = accounts_settings(library_settings, database_url, mfa_enabled=True)
    with pytest.raises(ValueError, match="mail server"):
        build_accounts(settings, services.catalog)


def test_a_new_code_replaces_the_old_one(
    mfa: tuple[httpx.Client, Mailbox, Accounts],
) -> None:
    client, mailbox, _ = mfa
    email = _email()
    first = _start(client, "/auth/register", email)
    client.post(
        "/auth/verify", json={"challenge_id": first, "code": mailbox.code_for(email)}
    )
    older = _start(client, "/auth/login", email)
    old_code = mailbox.code_for(email)
    before = len(mailbox.messages)
    newer = _start(client, "/auth/login", email)
    deadline = time.time() + 10
    while len(mailbox.messages) == before and time.time() < deadline:
        time.sleep(0.05)
    new_code = mailbox.code_for(email)
    stale = client.post("/auth/verify", json={"challenge_id": older, "code": old_code})
    assert stale.status_code == 401
    fresh = client.post("/auth/verify", json={"challenge_id": newer, "code": new_code})
    assert fresh.status_code == 200


def test_code_emails_are_limited_per_account(
    services: Services,
    library_settings: Settings,
    empty_database_url: str,
    smtp_server: tuple[int, Mailbox],
) -> None:
    port, _ = smtp_server
    settings = accounts_settings(
        library_settings,
        empty_database_url,
        mfa_enabled=True,
        codes_per_account=2,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
    )
    accounts = build_accounts(settings, services.catalog)
    app = create_app(settings, services=services, accounts=accounts)
    email = _email()
    try:
        with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            _start(client, "/auth/register", email)
            body = {"email": email, "password": TEST_PASSWORD}
            codes = [
                client.post("/auth/login", json=body).status_code for _ in range(3)
            ]
    finally:
        accounts.close()
    assert codes == [202, 202, 429]
