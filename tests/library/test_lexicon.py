"""The English–Hebrew lexicon learned from the library's bilingual segments."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from torah_study.library import lexicon as lexicon_module
from torah_study.library.hebrew import prefix_variants
from torah_study.library.lexicon import Lexicon, build_lexicon, english_key
from torah_study.retrieval.rerank import term_coverage


@pytest.fixture(scope="module")
def lexicon(services) -> Lexicon:  # type: ignore[no-untyped-def]
    return build_lexicon(services.store.bilingual())


def test_english_key_drops_plurals() -> None:
    assert english_key("Levels") == "level"
    assert english_key("cities") == "city"
    assert english_key("glass") == "glass"
    assert english_key("Israel's") == "israel"


def test_learns_translations_both_ways(lexicon: Lexicon) -> None:
    # Counted over the bilingual segments of the test library (Torah,
    # Psalms, Pirkei Avot, Mishnah, Talmud).
    assert lexicon.pairs > 5_000
    assert "מים" in lexicon.to_hebrew("water")
    assert "שבת" in lexicon.to_hebrew("Sabbath")
    assert "water" in lexicon.to_english("מים")
    # A prefixed form is looked up without its prefix letters.
    assert "water" in lexicon.to_english("והמים")


def test_keeps_one_form_of_each_hebrew_word(lexicon: Lexicon) -> None:
    for english, options in lexicon.english.items():
        words = [hebrew for hebrew, _ in options]
        for word in words:
            same = [w for w in words if w != word and word in prefix_variants(w)]
            assert not same, (english, word, same)


def test_round_trips_through_its_file(lexicon: Lexicon, tmp_path: Path) -> None:
    path = tmp_path / "lexicon.json"
    lexicon.save(path)
    loaded = Lexicon.load(path)
    assert loaded.english == lexicon.english
    assert loaded.hebrew == lexicon.hebrew
    assert loaded.pairs == lexicon.pairs


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        "null",
        json.dumps({"format": 1}),
        json.dumps({"format": 0, "english": {}, "hebrew": {}, "pairs": 0}),
        json.dumps({"format": 1, "english": {"a": [["x"]]}, "hebrew": {}, "pairs": 1}),
    ],
    ids=["not-json", "list", "null", "no-entries", "older-format", "bad-entry"],
)
def test_invalid_file_gives_empty_lexicon(
    content: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "lexicon.json"
    path.write_text(content, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert Lexicon.read(path) is None
        assert len(Lexicon.load(path)) == 0
    assert "invalid lexicon" in caplog.text
    assert str(path) in caplog.text


def test_missing_file_gives_empty_lexicon(tmp_path: Path) -> None:
    assert Lexicon.read(tmp_path / "absent.json") is None
    assert len(Lexicon.load(tmp_path / "absent.json")) == 0


def test_ingest_saves_the_lexicon(library_settings) -> None:  # type: ignore[no-untyped-def]
    saved = Lexicon.load(library_settings.lexicon_path)
    assert len(saved) > 500
    assert "מים" in saved.to_hebrew("water")


def test_ingest_rebuilds_invalid_lexicon(library_settings, export_dir) -> None:  # type: ignore[no-untyped-def]
    from torah_study.ingest import ingest

    path = library_settings.lexicon_path
    good = path.read_text(encoding="utf-8")
    path.write_text("[]", encoding="utf-8")
    try:
        report = ingest(library_settings, export_dir, show_progress=False)
        rebuilt = Lexicon.read(path)
        assert rebuilt is not None
        assert report.lexicon_words == len(rebuilt)
        assert "מים" in rebuilt.to_hebrew("water")
    finally:
        path.write_text(good, encoding="utf-8")


def test_coverage_counts_translated_terms() -> None:
    words = ["ויאמר", "אלהים", "יהי", "המים"]
    assert term_coverage(["water", "light"], words) == 0.0
    assert term_coverage(["water", "light"], words, {"water": ["מים"]}) == 0.5


def test_build_ignores_input_order(services) -> None:  # type: ignore[no-untyped-def]
    pairs = list(services.store.bilingual())
    forward = build_lexicon(pairs)
    backward = build_lexicon(reversed(pairs))
    assert forward.english == backward.english
    assert forward.hebrew == backward.hebrew


def test_learns_from_a_bounded_sample(services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pairs = list(services.store.bilingual())
    usable = len(lexicon_module._read_segments(pairs)[0])
    limit = usable // 3
    monkeypatch.setattr(lexicon_module, "MAX_SEGMENTS", limit)

    segments, english_count, _ = lexicon_module._read_segments(pairs)
    again = lexicon_module._read_segments(pairs)[0]

    assert len(segments) == limit < usable
    assert segments == again
    # The counts describe the sample, not every segment read.
    assert max(english_count.values()) <= limit
    # A sample drawn from the whole stream, not only its beginning.
    first = lexicon_module._read_segments(pairs[:limit])[0]
    assert segments != first
    assert build_lexicon(pairs).english


def test_merging_in_groups_counts_the_same(services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pairs = list(services.store.bilingual())
    whole = build_lexicon(pairs)
    monkeypatch.setattr(lexicon_module, "CHUNK_SEGMENTS", 500)
    monkeypatch.setattr(lexicon_module, "MERGE_KEYS", 1)
    merged_each_chunk = build_lexicon(pairs)
    monkeypatch.setattr(lexicon_module, "MERGE_KEYS", 200_000)
    merged_in_groups = build_lexicon(pairs)

    assert whole.english
    assert merged_each_chunk.english == whole.english == merged_in_groups.english
    assert merged_each_chunk.hebrew == whole.hebrew == merged_in_groups.hebrew
