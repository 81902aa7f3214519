"""LanceStore with one writer and separate readers, on real Torah text."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from torah_study.index.base import SegmentRecord
from torah_study.index.lance import SEGMENTS, LanceStore
from torah_study.ingest import to_records
from torah_study.library.export import build_book_texts, read_text_file

pytestmark = pytest.mark.corpus

TORAH = "json/Tanach/Torah"


def _book(export_dir: Path, title: str) -> tuple[list[SegmentRecord], list[str]]:
    """Return the records and search texts of a Torah book from the export."""
    files = [
        read_text_file(export_dir / TORAH / title / language / "merged.json")
        for language in ("Hebrew", "English")
    ]
    (book_text,) = build_book_texts(files, 0)
    return to_records(book_text)


def _versions(store: LanceStore) -> set[int]:
    """Return the version numbers of the segments table still on disk."""
    return {int(v["version"]) for v in store._segments.list_versions()}


def test_reader_sees_rows_after_refresh(export_dir: Path, tmp_path: Path) -> None:
    writer = LanceStore(tmp_path / "index")
    writer.replace_book("Genesis", *_book(export_dir, "Genesis"))
    writer.finish()
    reader = LanceStore(tmp_path / "index")
    assert reader.get(["Genesis 1:1"])

    writer.replace_book("Exodus", *_book(export_dir, "Exodus"))
    assert reader.get(["Exodus 20:13"]) == []
    reader.refresh()
    (record,) = reader.get(["Exodus 20:13"])
    assert "murder" in record.en.lower()


def test_finish_keeps_versions_readers_use(export_dir: Path, tmp_path: Path) -> None:
    writer = LanceStore(tmp_path / "index", keep_versions=timedelta(hours=1))
    genesis = _book(export_dir, "Genesis")
    writer.replace_book("Genesis", *genesis)
    writer.finish()
    reader = LanceStore(tmp_path / "index")
    before = reader.versions()[SEGMENTS]

    # Rewriting the book replaces every row, then finish compacts and
    # rebuilds the indexes while the reader stays on its version.
    writer.replace_book("Genesis", *genesis)
    writer.replace_book("Exodus", *_book(export_dir, "Exodus"))
    writer.finish()

    assert reader.versions()[SEGMENTS] == before
    assert [hit.ref for hit in reader.keyword("beginning created heaven", 3)]
    assert reader.get(["Genesis 1:1"])[0].en.startswith("In the beginning")
    assert reader.get(["Exodus 20:13"]) == []
    reader.refresh()
    assert reader.versions()[SEGMENTS] > before
    assert reader.get(["Exodus 20:13"])


def test_finish_removes_long_replaced_versions(
    export_dir: Path, tmp_path: Path
) -> None:
    writer = LanceStore(tmp_path / "index", keep_versions=timedelta(0))
    genesis = _book(export_dir, "Genesis")
    writer.replace_book("Genesis", *genesis)
    writer.replace_book("Genesis", *genesis)
    written = _versions(writer)
    # Versions replaced more than the clock margin ago become removable.
    time.sleep(1.5)
    writer.finish()

    assert written & _versions(writer) == set()
    (record,) = writer.get(["Genesis 1:1"])
    assert record.en.startswith("In the beginning")
    assert writer.count() == len(genesis[0])


def test_finish_without_old_versions_keeps_all(
    export_dir: Path, tmp_path: Path
) -> None:
    writer = LanceStore(tmp_path / "index", keep_versions=timedelta(hours=1))
    genesis = _book(export_dir, "Genesis")
    writer.replace_book("Genesis", *genesis)
    writer.replace_book("Genesis", *genesis)
    written = _versions(writer)
    writer.finish()

    # finish only adds versions (compaction, indexes); none is removed.
    assert written < _versions(writer)


def test_rewrite_of_stored_book_one_commit(export_dir: Path, tmp_path: Path) -> None:
    store = LanceStore(tmp_path / "index")
    records, search = _book(export_dir, "Genesis")
    store.replace_book("Genesis", records, search)
    before = store.versions()[SEGMENTS]

    store.replace_book("Genesis", records[:100], search[:100])

    assert store.versions()[SEGMENTS] == before + 1
    assert store.count() == 100
    assert store.get(["Genesis 1:1"])
    assert store.get([records[-1].ref]) == []


def test_dense_settings_reach_the_vector_index(
    export_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the IVF-PQ index exists, nprobes and refine_factor shape the search."""
    monkeypatch.setattr("torah_study.index.lance.VECTOR_INDEX_MIN_ROWS", 1000)
    records: list[SegmentRecord] = []
    for title in ("Genesis", "Exodus"):
        book, _ = _book(export_dir, title)
        records.extend(book)
    records = records[:2048]
    # Vectors that are not embeddings of the texts: only their geometry matters.
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(len(records), 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = LanceStore(tmp_path / "index", dimension=32, nprobes=1, refine_factor=1)
    store.add_vectors(records, vectors, ["x"] * len(records), replace=False)
    store.optimize_vectors()
    assert ("vector",) in {tuple(i.columns) for i in store._vectors.list_indices()}
    query = vectors[5] + rng.normal(scale=0.3, size=32).astype(np.float32)
    query /= np.linalg.norm(query)
    exact = [records[i].ref for i in np.argsort(-(vectors @ query))[:10]]
    narrow = [hit.ref for hit in store.dense(query, 10)]
    store.nprobes, store.refine_factor = 10_000, 50
    wide = [hit.ref for hit in store.dense(query, 10)]
    assert wide == exact
    assert narrow != exact
