"""A serving process's view of the library follows an ingest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from torah_study.config import Settings
from torah_study.ingest import ingest
from torah_study.service import (
    LibraryWatcher,
    Services,
    build_services,
    file_stamps,
    refreshed,
)

pytestmark = pytest.mark.corpus

BOOK_DIRS = ("json/Tanach/Torah/Genesis", "json/Tanach/Torah/Exodus")


@pytest.fixture()
def settings(export_dir: Path, tmp_path: Path) -> Settings:
    """Settings of a data folder with Genesis ingested from a copy of the export."""
    root = tmp_path / "export"
    for relative in (*BOOK_DIRS, "schemas"):
        shutil.copytree(export_dir / relative, root / relative)
    settings = Settings(
        data_dir=tmp_path / "data",
        export_dir=root,
        books=("Genesis",),
        dense_scope=(),
        llm_provider="sources",
        _env_file=None,  # type: ignore[call-arg]
    )
    ingest(settings, root, show_progress=False)
    return settings


def _add_exodus(settings: Settings) -> None:
    assert settings.export_dir is not None
    more = settings.model_copy(update={"books": ("Genesis", "Exodus")})
    ingest(more, settings.export_dir, show_progress=False)


def test_refreshed_none_when_unchanged(settings: Settings) -> None:
    services = build_services(settings, model=None)
    assert services.stamps == file_stamps(settings)
    assert refreshed(services) is None


def test_refreshed_view_has_new_book(settings: Settings) -> None:
    services = build_services(settings, model=None)
    _add_exodus(settings)

    fresh = refreshed(services)

    assert fresh is not None
    assert "Exodus" in fresh.catalog
    assert "Exodus" not in services.catalog
    assert fresh.retriever.lookup(fresh.catalog.parse("Exodus 20:13"))
    assert fresh.store.versions() != services.store.versions()
    # The models are shared, not loaded again.
    assert fresh.embeddings is services.embeddings
    assert fresh.retriever.reranker is services.retriever.reranker
    assert refreshed(fresh) is None


def test_watcher_checks_once_per_interval(settings: Settings) -> None:
    now = [0.0]
    watcher = LibraryWatcher(10.0, clock=lambda: now[0])
    services = build_services(settings, model=None)
    installed: list[Services] = []
    _add_exodus(settings)

    now[0] = 9.0
    watcher.check(services, installed.append)
    assert installed == []

    now[0] = 10.0
    watcher.check(services, installed.append)
    assert len(installed) == 1
    assert "Exodus" in installed[0].catalog

    # The next check is due one interval after this one.
    now[0] = 15.0
    watcher.check(installed[0], installed.append)
    assert len(installed) == 1


def test_watcher_keeps_view_on_bad_catalog(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = LibraryWatcher(0.0)
    services = build_services(settings, model=None)
    installed: list[Services] = []
    settings.catalog_path.write_text("[{", encoding="utf-8")

    watcher.check(services, installed.append)

    assert installed == []
    assert "Reloading the library failed" in caplog.text
    assert "Genesis" in services.catalog
