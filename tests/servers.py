"""Helpers for tests that run the API: servers, settings and accounts."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from torah_study.config import Settings

TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-signing"
TEST_PASSWORD = "a long study password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(app: Any, **options: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 and yield its base URL.

    ``options`` go to uvicorn.Config, such as ``log_config=None``.
    """
    port = free_port()
    config: dict[str, Any] = {"log_level": "warning", **options}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class Mailbox:
    """Collects the mail a local SMTP server receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._arrived = threading.Condition()

    async def handle_DATA(  # aiosmtpd calls this name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        message = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, recipient: str, timeout: float = 10.0) -> EmailMessage:
        """The newest message to ``recipient``, waiting for it to arrive."""
        deadline = time.time() + timeout
        with self._arrived:
            while True:
                for message in reversed(self.messages):
                    if recipient.lower() in str(message["To"]).lower():
                        return message
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"no mail to {recipient} arrived")
                self._arrived.wait(left)

    def code_for(self, recipient: str) -> str:
        body = self.wait_for(recipient).get_content()
        match = re.search(r"\b(\d{6})\b", body)
        assert match, body
        return match.group(1)


def accounts_settings(library: Settings, database: str, **changes: Any) -> Settings:
    """Settings for an API under test: the test library plus an accounts database."""
    values: dict[str, Any] = {
        "database_url": database,
        "jwt_secret": TEST_SECRET,
        "keepalive_seconds": 0.2,
        "register_limit_per_address": 1000,
        "questions_per_minute": 1000,
    }
    values.update(changes)
    for name in ("jwt_secret", "smtp_password"):
        if isinstance(values.get(name), str):
            values[name] = SecretStr(values[name])
    # model_copy does not validate, so pass the types the fields hold.
    return library.model_copy(update=values)


def register(client: httpx.Client, email: str | None = None) -> dict[str, Any]:
    """Create an account and return the token response with its password."""
    email = email or f"learner-{uuid.uuid4().hex[:10]}@example.org"
    response = client.post(
        "/auth/register", json={"email": email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    body["email"] = email
    body["password"] = TEST_PASSWORD
    body["headers"] = {"Authorization": f"Bearer {body['access_token']}"}
    return body


def fresh_postgres_database(server_url: str) -> str:
    """Create an empty database on the server and return its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    from torah_study.db.engine import normalise_url

    name = f"torah_study_test_{uuid.uuid4().hex[:12]}"
    url = make_url(normalise_url(server_url))
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)
