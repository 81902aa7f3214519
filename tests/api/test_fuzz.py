"""Schema-based fuzzing of every API operation with schemathesis.

The cases come from the app's own OpenAPI document and run in-process
against the real app (ASGI), with the test library and a signed-in user.
Every response must be free of server errors and match its declared schema.
TORAH_STUDY_FUZZ_EXAMPLES raises the number of generated cases per operation.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

from servers import TEST_PASSWORD, accounts_settings
from torah_study.accounts.service import Challenge, Client
from torah_study.api.app import create_app
from torah_study.config import Settings
from torah_study.service import Accounts, Services, build_accounts

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

# Generated cases per operation in the fuzzing phase; the slow operations,
# which run the answer pipeline, get a third of them.
FUZZ_EXAMPLES = int(os.environ.get("TORAH_STUDY_FUZZ_EXAMPLES", "12"))
SLOW_OPERATIONS = ("/chat", "/chat/stream", "/conversations/{conversation_id}/messages")
# A client address of the service's own calls, kept apart from the fuzzed
# requests' rate limits.
SETUP_CLIENT = Client("fixture", "test_fuzz")
QUESTION = "Where does the Torah say to love your neighbor as yourself?"


class MemoryMailer:
    """A mailer that keeps messages in memory, so codes can be read back."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, to: str, subject: str, body: str) -> None:
        self.sent.append((to, subject, body))

    def code_for(self, recipient: str) -> str:
        for to, _, body in reversed(self.sent):
            if to.lower() == recipient.lower():
                match = re.search(r"\b(\d{6})\b", body)
                assert match, body
                return match.group(1)
        raise AssertionError(f"no mail to {recipient} was sent")


@dataclass
class FuzzTarget:
    """The app under test and the records that cases point at."""

    app: FastAPI
    accounts: Accounts
    mailer: MemoryMailer
    headers: dict[str, str] = field(default_factory=dict)
    user_id: str = ""
    conversation_id: str = ""
    answer_id: str = ""

    def sign_in_new_user(self) -> tuple[str, dict[str, str]]:
        """Register and verify a fresh account; return its id and auth headers."""
        email = f"fuzz-{uuid.uuid4().hex[:12]}@example.org"
        challenge = self.accounts.auth.register(email, TEST_PASSWORD, SETUP_CLIENT)
        assert isinstance(challenge, Challenge)
        tokens = self.accounts.auth.verify_code(
            challenge.challenge_id, self.mailer.code_for(email), SETUP_CLIENT
        )
        return tokens.user.id, {"Authorization": f"Bearer {tokens.access_token}"}


def _load_schema() -> schemathesis.BaseSchema:
    """Load the OpenAPI document of an app that is built but not started.

    The document depends only on the routes, so it is read at import time,
    which ``schema.parametrize`` needs. The cases then run against the app
    of the ``fuzz_target`` fixture.
    """
    document = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    config = schemathesis.Config.from_dict(
        {
            "generation": {
                "database": "none",
                "max-examples": FUZZ_EXAMPLES,
                # Undeclared query parameters are ignored by design, so they
                # are not invalid input.
                "allow-extra-parameters": False,
                # Every case is signed in by the test. Missing and invalid
                # tokens are covered in tests/accounts/test_auth_api.py.
                "with-security-parameters": False,
            },
            "operations": [
                {
                    "include-path": list(SLOW_OPERATIONS),
                    "generation": {"max-examples": max(1, FUZZ_EXAMPLES // 3)},
                }
            ],
        }
    )
    return schemathesis.openapi.from_dict(document, config=config)


schema = _load_schema()


@pytest.fixture(scope="module")
def fuzz_target(
    services: Services,
    library_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FuzzTarget]:
    database: Path = tmp_path_factory.mktemp("fuzz-accounts") / "torah-study.db"
    # Email codes are on, so registration, sign-in and password reset all
    # send mail, which the memory mailer keeps.
    settings = accounts_settings(
        library_settings,
        f"sqlite:///{database}",
        mfa_enabled=True,
        login_limit_per_address=100_000,
        code_limit_per_address=100_000,
        register_limit_per_address=100_000,
    )
    mailer = MemoryMailer()
    accounts = build_accounts(settings, services.catalog, mailer)
    app = create_app(settings, services=services, accounts=accounts)
    assert app.openapi() == schema.raw_schema
    target = FuzzTarget(app, accounts, mailer)
    target.user_id, target.headers = target.sign_in_new_user()
    target.conversation_id, target.answer_id = _ask_one_question(target)
    yield target
    accounts.close()


def _ask_one_question(target: FuzzTarget) -> tuple[str, str]:
    """Return the ids of a new conversation and of its first answer."""
    created = (
        schema["/conversations"]["POST"]
        .Case(body={})
        .call(app=target.app, headers=target.headers)
    )
    assert created.status_code == 201, created.text
    conversation_id: str = created.json()["id"]
    turn = (
        schema["/conversations/{conversation_id}/messages"]["POST"]
        .Case(
            path_parameters={"conversation_id": conversation_id},
            body={"content": QUESTION},
        )
        .call(app=target.app, headers=target.headers)
    )
    assert turn.status_code == 200, turn.text
    answer_id: str = turn.json()["assistant_message"]["id"]
    return conversation_id, answer_id


@schema.parametrize()
@schema.given(real_ids=st.booleans())
# The answer pipeline is slow by Hypothesis's measure, and many generated
# bodies are large; neither is a fault of the test.
@hypothesis.settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.data_too_large,
        hypothesis.HealthCheck.filter_too_much,
    ],
)
def test_api_fuzz(
    case: schemathesis.Case[Any],
    real_ids: bool,
    fuzz_target: FuzzTarget,
) -> None:
    target = fuzz_target
    headers = dict(target.headers)
    path = case.operation.path
    method = case.method.upper()

    # Operations that end a sign-in or delete data get an account or a
    # conversation of their own, so the cases after them still work.
    if path in ("/auth/logout", "/me/password"):
        _, headers = target.sign_in_new_user()
    if real_ids and case.path_parameters:
        if "conversation_id" in case.path_parameters:
            conversation_id = target.conversation_id
            if method == "DELETE":
                conversation_id = target.accounts.conversations.create(
                    target.user_id
                ).id
            case.path_parameters["conversation_id"] = conversation_id
        if "message_id" in case.path_parameters:
            case.path_parameters["message_id"] = target.answer_id

    response = case.call(app=target.app, headers=headers)
    case.validate_response(
        response,
        checks=[
            schemathesis.checks.not_a_server_error,
            negative_data_rejection,
            response_schema_conformance,
            content_type_conformance,
        ],
    )
