"""The English–Hebrew lexicon learned from the library's bilingual segments."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from torah_study.library.hebrew import prefix_variants
from torah_study.library.lexicon import Lexicon, build_lexicon, english_key
from torah_study.retrieval.rerank import term_coverage


@pytest.fixture(scope="module")
def lexicon(services) -> Lexicon:  # type: ignore[no-untyped-def]
    return build_lexicon(services.store.bilingual())


def test_english_keys_drop_plain_plural_endings() -> None:
    assert english_key("Levels") == "level"
    assert english_key("cities") == "city"
    assert english_key("glass") == "glass"
    assert english_key("Israel's") == "israel"


def test_learns_translations_from_the_bilingual_texts(lexicon: Lexicon) -> None:
    # Counted over the Torah, Psalms, Pirkei Avot, Mishnah and Talmud texts
    # of the test library, each of which carries both languages.
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


def test_translate_returns_each_word_once_and_skips_the_terms(lexicon: Lexicon) -> None:
    words = lexicon.translate(["water", "waters", "מים"])
    assert len(words) == len(set(words))
    assert "מים" not in words
    assert lexicon.translate(["zorblat"]) == []


def test_round_trips_through_its_file(lexicon: Lexicon, tmp_path: Path) -> None:
    path = tmp_path / "lexicon.json"
    lexicon.save(path)
    loaded = Lexicon.load(path)
    assert loaded.english == lexicon.english
    assert loaded.hebrew == lexicon.hebrew
    assert loaded.pairs == lexicon.pairs


def test_missing_unreadable_or_older_files_give_an_empty_lexicon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert len(Lexicon.load(tmp_path / "absent.json")) == 0
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert len(Lexicon.load(broken)) == 0
    assert "unreadable lexicon" in caplog.text
    older = tmp_path / "older.json"
    older.write_text(json.dumps({"format": 0, "english": {"a": []}}), encoding="utf-8")
    assert len(Lexicon.load(older)) == 0


def test_ingest_saves_the_lexicon(library_settings) -> None:  # type: ignore[no-untyped-def]
    saved = Lexicon.load(library_settings.lexicon_path)
    assert len(saved) > 500
    assert "מים" in saved.to_hebrew("water")


def test_coverage_counts_a_term_found_through_its_translation() -> None:
    words = ["ויאמר", "אלהים", "יהי", "המים"]
    assert term_coverage(["water", "light"], words) == 0.0
    assert term_coverage(["water", "light"], words, {"water": ["מים"]}) == 0.5
