"""The HTTP API with accounts and retrieval in one PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from servers import accounts_settings, live_server, register
from torah_study.api.app import create_app
from torah_study.config import Settings
from torah_study.db.engine import normalise_url
from torah_study.service import Services

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


@pytest.fixture(scope="module")
def api(
    postgres_services: Services, postgres_library_settings: Settings
) -> Iterator[httpx.Client]:
    """A signed-in client; the accounts tables join the retrieval tables."""
    database = normalise_url(postgres_library_settings.retrieval_database)
    settings = accounts_settings(postgres_library_settings, database)
    app = create_app(settings, services=postgres_services)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        client.headers.update(register(client)["headers"])
        yield client


def test_health_counts_postgres_rows(
    api: httpx.Client, postgres_services: Services
) -> None:
    body = api.get("/health").json()
    assert body["status"] == "ok"
    assert body["segments"] == postgres_services.store.count()
    assert body["vectors"] == postgres_services.store.vector_count() > 0


def test_chat_cites_from_postgres(api: httpx.Client) -> None:
    question = "Where does the Torah say to love your neighbor as yourself?"
    response = api.post("/chat", json={"question": question}, timeout=60)
    assert response.status_code == 200
    body = response.json()
    assert "Leviticus 19:18" in body["refs"]
    assert body["verification"]["passed"]


def test_text_has_neighbours(api: httpx.Client) -> None:
    response = api.get("/texts/Genesis 2:1", params={"context": 2})
    assert response.status_code == 200
    body = response.json()
    assert [s["ref"] for s in body["before"]] == ["Genesis 1:30", "Genesis 1:31"]
    assert [s["ref"] for s in body["after"]] == ["Genesis 2:2", "Genesis 2:3"]
