"""Vectors in Parquet: import precomputed embeddings, export stored ones.

A row is one segment's vector. It is keyed by ``ref`` (the normal ref, as in
the library), ``lang`` and ``version``, the language and version title of the
text that was embedded, and carries a fixed-size float32 ``vector``. The
file's key-value metadata names the ``model`` and the ``dimension``.

A vector is the embedding of ``passage_text(record)``: the ref, a newline and
the English text where the segment has one, else the Hebrew without vowel
points, cut at ``EMBED_CHARS`` characters on a word boundary. Models trained
with instruction prefixes take theirs on top (E5: "passage: "). ``texts``
writes exactly these texts for a machine that computes the vectors elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from torah_study.embeddings.base import EmbeddingError, Embeddings, normalize_rows
from torah_study.embeddings.scope import books_in_scope
from torah_study.embeddings.stage import MAX_BOOK_SEGMENTS, vector_digest
from torah_study.index.base import SegmentRecord, SegmentStore
from torah_study.library.catalog import Catalog
from torah_study.retrieval.rerank import passage_text

logger = logging.getLogger(__name__)

# Rows read, checked and stored together; memory stays proportional to it.
IMPORT_BATCH_ROWS = 2048
# Refs fetched from the store per query when exporting.
EXPORT_CHUNK = 1000
# Skipped rows listed by row number in the report; the rest are only counted.
MAX_LISTED = 5

KEY_COLUMNS = ("ref", "lang", "version")


class VectorFileError(EmbeddingError):
    """Raised when a vector file is unreadable or does not fit the embedder."""


@dataclass
class ImportReport:
    """Counts of one import and the first skipped rows, by reason."""

    rows: int = 0
    stored: int = 0
    unknown_ref: int = 0
    mismatched: int = 0
    invalid: int = 0
    duplicate: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.unknown_ref + self.mismatched + self.invalid + self.duplicate

    def skip(self, kind: str, row: int, message: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < MAX_LISTED:
            self.examples.append(f"row {row}: {message}")

    def summary(self) -> str:
        lines = [
            f"rows read: {self.rows}",
            f"vectors stored: {self.stored}",
            f"skipped: {self.skipped} ({self.unknown_ref} refs not in the library, "
            f"{self.mismatched} of another language or version, "
            f"{self.invalid} without a usable vector, {self.duplicate} repeating "
            "an earlier row's ref)",
        ]
        lines.extend(f"skipped {example}" for example in self.examples)
        return "\n".join(lines)


def embedded_language(record: SegmentRecord) -> tuple[str, str]:
    """Return the language and version title of the text ``passage_text`` embeds."""
    if record.en:
        return "en", record.en_version
    return "he", record.he_version


def accepted_models(embedder: Embeddings) -> set[str]:
    """Return the model names whose vectors the embedder's queries match.

    That is the embedder's name, the name without its provider prefix
    ("openai:", "gemini:") and the names in its ``aliases`` attribute.
    """
    names = {embedder.name, embedder.name.split(":", 1)[-1]}
    names.update(getattr(embedder, "aliases", ()))
    return names


def file_schema(dimension: int, model: str) -> pa.Schema:
    fields = [pa.field(name, pa.string(), nullable=False) for name in KEY_COLUMNS]
    vector = pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False)
    metadata = {"model": model, "dimension": str(dimension)}
    return pa.schema([*fields, vector], metadata=metadata)


def _open(path: Path, embedder: Embeddings) -> pq.ParquetFile:
    """Open ``path`` and check its columns, model and dimension against the embedder."""
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as error:
        raise VectorFileError(f"Cannot read {path} as Parquet: {error}") from error

    schema = parquet.schema_arrow
    metadata = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    model = metadata.get("model")
    if not model:
        raise VectorFileError(
            f"{path} has no 'model' in its key-value metadata: expected "
            f"{embedder.name}, the model of the configured embedder."
        )
    if model not in accepted_models(embedder):
        raise VectorFileError(
            f"{path} contains vectors of model {model!r}, but the configured "
            f"embedder is {embedder.name!r}: questions are embedded with that "
            "model, so these vectors would not match them. Configure the same "
            "model (TORAH_STUDY_EMBEDDING_PROVIDER and TORAH_STUDY_EMBEDDING_MODEL)."
        )
    declared = metadata.get("dimension", "")
    if declared != str(embedder.dimension):
        raise VectorFileError(
            f"{path} declares dimension {declared or 'none'}, but the embedder "
            f"{embedder.name} produces {embedder.dimension}."
        )

    missing = [c for c in (*KEY_COLUMNS, "vector") if c not in schema.names]
    if missing:
        raise VectorFileError(f"{path} lacks the column(s) {', '.join(missing)}.")
    for name in KEY_COLUMNS:
        column_type = schema.field(name).type
        if not (
            pa.types.is_string(column_type) or pa.types.is_large_string(column_type)
        ):
            raise VectorFileError(
                f"{path} has a {name} column of type {column_type}: expected string."
            )
    vector_type = schema.field("vector").type
    if not (
        pa.types.is_fixed_size_list(vector_type)
        and vector_type.list_size == embedder.dimension
        and pa.types.is_floating(vector_type.value_type)
    ):
        raise VectorFileError(
            f"{path} has a vector column of type {vector_type}: expected "
            f"fixed_size_list<float32>[{embedder.dimension}]."
        )
    return parquet


def import_vectors(
    path: Path,
    store: SegmentStore,
    embedder: Embeddings,
    *,
    batch_rows: int = IMPORT_BATCH_ROWS,
) -> ImportReport:
    """Store the vectors of a Parquet file for the segments they match.

    Each batch replaces the stored vectors of its refs, so re-running an
    interrupted import stores every vector once. A row is skipped when its ref
    is not in the library, when its language or version differs from the
    text the segment would embed now, when its vector is null, zero or not
    finite, or when the vector of an earlier row with the same ref was
    stored. Stored vectors are normalised and get the digest the embedding
    stage computes, so a later ingest keeps them.
    """
    parquet = _open(path, embedder)
    report = ImportReport()
    dimension = embedder.dimension
    columns = [*KEY_COLUMNS, "vector"]
    # Refs stored from earlier rows; kept as a set of strings, which stays
    # small next to the vectors even for the whole library.
    seen: set[str] = set()
    # Refs that had a vector before the import. Only their old vectors need
    # deleting, and a delete scans the whole vectors table.
    present = store.vector_refs()
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
        first_row = report.rows
        report.rows += batch.num_rows
        keys = [batch.column(name).to_pylist() for name in KEY_COLUMNS]
        vectors = _vector_matrix(batch.column("vector"), dimension)
        known = {r.ref: r for r in store.get(sorted({k for k in keys[0] if k}))}
        chosen: dict[str, tuple[SegmentRecord, int]] = {}
        for index, (ref, lang, version) in enumerate(zip(*keys, strict=True)):
            row = first_row + index
            if ref in seen or ref in chosen:
                report.skip("duplicate", row, f"{ref} repeats an earlier row")
                continue
            record = known.get(ref) if ref else None
            if record is None:
                report.skip("unknown_ref", row, f"ref {ref!r} is not in the library")
                continue
            expected = embedded_language(record)
            if (lang, version) != expected:
                report.skip(
                    "mismatched",
                    row,
                    f"{ref} was embedded from {lang}/{version!r}, but the library "
                    f"embeds {expected[0]}/{expected[1]!r}",
                )
                continue
            vector = vectors[index]
            if not np.all(np.isfinite(vector)) or not np.any(vector):
                report.skip("invalid", row, f"{ref} has a null, zero or NaN vector")
                continue
            chosen[ref] = (record, index)
        if not chosen:
            continue
        for replace in (True, False):
            part = [(r, i) for r, i in chosen.values() if (r.ref in present) == replace]
            if not part:
                continue
            records = [record for record, _ in part]
            rows = normalize_rows(vectors[[index for _, index in part]])
            digests = [vector_digest(r, embedder.name) for r in records]
            store.add_vectors(records, rows, digests, replace=replace)
        seen.update(chosen)
        report.stored += len(chosen)
    return report


def _vector_matrix(column: pa.Array, dimension: int) -> np.ndarray:
    """Return the rows of a fixed-size list column as float32, NaN for nulls."""
    values = column.values.slice(column.offset * dimension, len(column) * dimension)
    flat: np.ndarray = values.to_numpy(zero_copy_only=False).astype(np.float32)
    matrix = flat.reshape(len(column), dimension)
    if column.null_count:
        matrix[~column.is_valid().to_numpy(zero_copy_only=False)] = np.nan
    return matrix


@dataclass
class ExportReport:
    """Counts of one export: rows written and stored vectors left out as stale."""

    rows: int = 0
    stale: int = 0


def export_vectors(
    path: Path,
    store: SegmentStore,
    catalog: Catalog,
    embedder: Embeddings,
    books: Sequence[str] | None = None,
) -> ExportReport:
    """Write the stored vectors of ``books`` (default: all) to a Parquet file.

    Only vectors whose digest matches the current text and the embedder are
    written; others are counted as stale. The file is written under a
    temporary name and renamed when complete.
    """
    report = ExportReport()
    schema = file_schema(embedder.dimension, embedder.name)
    titles = list(books) if books is not None else [b.title for b in catalog]
    with _written(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for title in titles:
            digests = store.vector_digests(title)
            refs = sorted(digests)
            for start in range(0, len(refs), EXPORT_CHUNK):
                chunk = refs[start : start + EXPORT_CHUNK]
                rows = _export_rows(store, embedder, chunk, digests, report)
                if rows[0]:
                    writer.write_table(_table(rows, schema))
    return report


@contextmanager
def _written(path: Path) -> Iterator[Path]:
    """Yield a temporary name next to ``path``; rename it to ``path`` at the end.

    On any failure the temporary file is removed; a failure to write raises
    VectorFileError naming ``path``.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    except (OSError, pa.ArrowException) as error:
        tmp.unlink(missing_ok=True)
        reason = getattr(error, "strerror", None) or str(error)
        raise VectorFileError(f"Cannot write {path}: {reason}") from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _export_rows(
    store: SegmentStore,
    embedder: Embeddings,
    refs: list[str],
    digests: dict[str, str],
    report: ExportReport,
) -> tuple[list[str], list[str], list[str], list[np.ndarray]]:
    vectors = store.vectors_for(refs)
    columns: tuple[list[str], list[str], list[str], list[np.ndarray]] = (
        [],
        [],
        [],
        [],
    )
    for record in store.get(refs):
        vector = vectors.get(record.ref)
        if vector is None or digests[record.ref] != vector_digest(
            record, embedder.name
        ):
            report.stale += 1
            continue
        lang, version = embedded_language(record)
        columns[0].append(record.ref)
        columns[1].append(lang)
        columns[2].append(version)
        columns[3].append(vector)
    report.rows += len(columns[0])
    return columns


def _table(
    rows: tuple[list[str], list[str], list[str], list[np.ndarray]], schema: pa.Schema
) -> pa.Table:
    refs, langs, versions, vectors = rows
    dimension = schema.field("vector").type.list_size
    flat = pa.array(np.concatenate(vectors).astype(np.float32), type=pa.float32())
    vector_column = pa.FixedSizeListArray.from_arrays(flat, dimension)
    return pa.Table.from_arrays(
        [pa.array(refs), pa.array(langs), pa.array(versions), vector_column],
        schema=schema,
    )


def export_texts(
    path: Path,
    store: SegmentStore,
    catalog: Catalog,
    embedder: Embeddings,
    scope: Sequence[str],
    *,
    pending_only: bool = True,
) -> int:
    """Write the texts to embed (ref, lang, version, text) for the dense scope.

    With ``pending_only`` only segments without a current vector are written.
    Returns the number of rows. The metadata names the model and dimension a
    vector file made from it must declare.
    """
    schema = pa.schema(
        [
            *(pa.field(name, pa.string(), nullable=False) for name in KEY_COLUMNS),
            pa.field("text", pa.string(), nullable=False),
        ],
        metadata={"model": embedder.name, "dimension": str(embedder.dimension)},
    )
    rows = 0
    with _written(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for title in books_in_scope(catalog, scope):
            known = store.vector_digests(title) if pending_only else {}
            records = [
                r
                for r in store.span(title, "", "~", limit=MAX_BOOK_SEGMENTS)
                if not pending_only
                or known.get(r.ref) != vector_digest(r, embedder.name)
            ]
            if not records:
                continue
            keys = [embedded_language(r) for r in records]
            table = pa.Table.from_arrays(
                [
                    pa.array([r.ref for r in records]),
                    pa.array([k[0] for k in keys]),
                    pa.array([k[1] for k in keys]),
                    pa.array([passage_text(r) for r in records]),
                ],
                schema=schema,
            )
            writer.write_table(table)
            rows += len(records)
    return rows
