"""Ingestion end to end on a small copy of the real export."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from torah_study.config import Settings
from torah_study.index.base import SegmentStore
from torah_study.index.factory import open_store as _open_store
from torah_study.ingest import ingest
from torah_study.library.catalog import Catalog

pytestmark = pytest.mark.corpus

BOOK_DIRS = (
    "json/Mishnah/Seder Nezikin/Pirkei Avot",
    "json/Mishnah/Seder Zeraim/Mishnah Berakhot",
)


_opened: list[SegmentStore] = []


def open_store(settings: Settings, dimension: int) -> SegmentStore:
    """Open a store that is closed when the test ends (its connections too)."""
    store = _open_store(settings, dimension)
    _opened.append(store)
    return store


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


class CountingEmbeddings:
    """A real but tiny embedding provider: bag of letters, counts its calls."""

    name = "letters"
    dimension = 8

    def __init__(self) -> None:
        self.embedded = 0

    def _embed(self, texts: list[str]):  # type: ignore[no-untyped-def]
        import numpy as np

        rows = [[text.count(c) + 1 for c in "aeiouלמנ"] for text in texts]
        matrix = np.asarray(rows, dtype=np.float32)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    def embed_queries(self, texts):  # type: ignore[no-untyped-def]
        return self._embed(list(texts))

    def embed_passages(self, texts):  # type: ignore[no-untyped-def]
        self.embedded += len(texts)
        return self._embed(list(texts))


@pytest.fixture()
def small_export(export_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "export"
    for relative in BOOK_DIRS:
        shutil.copytree(export_dir / relative, root / relative)
    shutil.copytree(export_dir / "schemas", root / "schemas")
    return root


@pytest.fixture(params=["lance", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, object]:
    """Settings of each retrieval backend, the postgres one on a new database."""
    if request.param == "lance":
        return {}
    from servers import fresh_postgres_database
    from torah_study.config import libpq_url

    server_url: str = request.getfixturevalue("postgres_url")
    return {
        "retrieval_backend": "postgres",
        "retrieval_database_url": libpq_url(fresh_postgres_database(server_url)),
    }


def _settings(tmp_path: Path, backend: dict[str, object] | None = None) -> Settings:
    settings = Settings(
        data_dir=tmp_path / "data",
        dense_scope=("Pirkei Avot",),
        embedding_workers=1,
        _env_file=None,  # type: ignore[call-arg]
    )
    return settings.model_copy(update=backend or {})


def test_ingest_writes_segments_and_catalog(
    small_export: Path, tmp_path: Path, backend: dict[str, object]
) -> None:
    settings = _settings(tmp_path, backend)
    embeddings = CountingEmbeddings()
    report = ingest(settings, small_export, embeddings=embeddings, show_progress=False)
    store = open_store(settings, 8)
    assert report.books == 2
    assert report.segments == store.count()
    assert report.languages["he"] > 0
    assert report.languages["en"] > 0
    assert store.vector_count() == len(store.span("Pirkei Avot", "", "~", 10_000))
    catalog = Catalog.load(settings.catalog_path)
    assert catalog.parse("Pirkei Avot 2:16").normal() == "Pirkei Avot 2:16"


def test_ingest_rerun_skips_unchanged(
    small_export: Path, tmp_path: Path, backend: dict[str, object]
) -> None:
    settings = _settings(tmp_path, backend)
    ingest(settings, small_export, embeddings=CountingEmbeddings(), show_progress=False)
    second = CountingEmbeddings()
    report = ingest(settings, small_export, embeddings=second, show_progress=False)
    assert report.books_skipped == 2
    assert report.segments_written == 0
    assert second.embedded == 0


def test_ingest_rewrites_changed_book_only(
    small_export: Path, tmp_path: Path, backend: dict[str, object]
) -> None:
    settings = _settings(tmp_path, backend)
    ingest(settings, small_export, embeddings=CountingEmbeddings(), show_progress=False)
    path = small_export / BOOK_DIRS[0] / "English/merged.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["text"][0][0] = "Moses received the Torah at Sinai (edited)."
    path.write_text(json.dumps(data), encoding="utf-8")
    embeddings = CountingEmbeddings()
    report = ingest(settings, small_export, embeddings=embeddings, show_progress=False)
    assert report.books_skipped == 1
    assert embeddings.embedded == 1
    store = open_store(settings, 8)
    (record,) = store.get(["Pirkei Avot 1:1"])
    assert record.en.endswith("(edited).")


def test_corrupt_file_reported_and_skipped(small_export: Path, tmp_path: Path) -> None:
    broken = small_export / "json/Mishnah/Broken/Hebrew/merged.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json", encoding="utf-8")
    settings = _settings(tmp_path)
    report = ingest(
        settings, small_export, embeddings=CountingEmbeddings(), show_progress=False
    )
    assert [path for path, _ in report.corrupt] == [str(broken)]
    assert report.books == 2
    assert str(broken) in report.summary()


def test_books_setting_limits_ingest(
    small_export: Path, tmp_path: Path, backend: dict[str, object]
) -> None:
    settings = _settings(tmp_path, backend).model_copy(
        update={"books": ("Mishnah Berakhot",)}
    )
    report = ingest(
        settings, small_export, embeddings=CountingEmbeddings(), show_progress=False
    )
    store = open_store(settings, 8)
    assert report.books == 1
    assert store.books() == ["Mishnah Berakhot"]


def test_missing_export_folder_is_clear(tmp_path: Path) -> None:
    from torah_study.library.export import ExportError

    with pytest.raises(ExportError, match="Export folder not found"):
        ingest(_settings(tmp_path), tmp_path / "nope", embeddings=CountingEmbeddings())


def test_new_store_gets_every_book(
    small_export: Path, tmp_path: Path, postgres_url: str
) -> None:
    """A data folder ingested into LanceDB, then into an empty PostgreSQL store."""
    from servers import fresh_postgres_database
    from torah_study.config import libpq_url

    settings = _settings(tmp_path)
    ingest(settings, small_export, embeddings=CountingEmbeddings(), show_progress=False)
    lance = open_store(settings, 8)
    postgres = settings.model_copy(
        update={
            "retrieval_backend": "postgres",
            "retrieval_database_url": libpq_url(fresh_postgres_database(postgres_url)),
        }
    )
    report = ingest(
        postgres, small_export, embeddings=CountingEmbeddings(), show_progress=False
    )
    store = open_store(postgres, 8)
    assert report.books_skipped == 0
    assert store.count() == lance.count() == report.segments
    assert store.books() == lance.books()
    assert store.vector_count() == lance.vector_count()
