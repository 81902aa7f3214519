"""Reading real export files into segments."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from torah_study.library.export import (
    ExportError,
    TextFile,
    build_book_texts,
    choose_versions,
    read_text_file,
)
from torah_study.library.hebrew import strip_marks

pytestmark = pytest.mark.corpus


def _segments(text_files: dict[str, list[TextFile]], title: str) -> dict[str, object]:
    (book_text,) = build_book_texts(text_files[title])
    return {s.ref.normal(): s for s in book_text.segments}


def test_genesis_segments_pair_languages(text_files: dict[str, list[TextFile]]) -> None:
    segments = _segments(text_files, "Genesis")
    first = segments["Genesis 1:1"]
    assert first.en == "In the beginning God created the heaven and the earth."  # type: ignore[attr-defined]
    assert strip_marks(first.he).startswith("בראשית ברא")  # type: ignore[attr-defined]
    assert len(segments) == 1533
    assert "Genesis 50:26" in segments


def test_merged_version_preferred(text_files: dict[str, list[TextFile]]) -> None:
    chosen = choose_versions(text_files["Genesis"])
    assert chosen["he"].merged
    assert chosen["en"].merged


def test_version_titles_kept(text_files: dict[str, list[TextFile]]) -> None:
    segment = _segments(text_files, "Genesis")["Genesis 1:1"]
    assert "JPS 1917" in segment.versions["en"]  # type: ignore[attr-defined]
    assert segment.versions["he"]  # type: ignore[attr-defined]


def test_pirkei_avot_refs(text_files: dict[str, list[TextFile]]) -> None:
    segments = _segments(text_files, "Pirkei Avot")
    assert "Pirkei Avot 2:16" in segments
    assert "לגמור" in strip_marks(segments["Pirkei Avot 2:16"].he)  # type: ignore[attr-defined]


def test_mishnah_berakhot_refs(text_files: dict[str, list[TextFile]]) -> None:
    segments = _segments(text_files, "Mishnah Berakhot")
    first = segments["Mishnah Berakhot 1:1"]
    assert "מאימתי" in strip_marks(first.he)  # type: ignore[attr-defined]
    assert first.en  # type: ignore[attr-defined]


def test_talmud_starts_at_2a(text_files: dict[str, list[TextFile]]) -> None:
    segments = _segments(text_files, "Berakhot")
    refs = list(segments)
    assert refs[0] == "Berakhot 2a:1"
    assert not any(ref.startswith("Berakhot 1") and ref[10] in "ab" for ref in refs)
    assert "Berakhot 2b:1" in segments


def test_rashi_commentary_refs(text_files: dict[str, list[TextFile]]) -> None:
    (book_text,) = build_book_texts(text_files["Rashi on Genesis"])
    assert book_text.book.commentator == "Rashi"
    assert book_text.book.base_title == "Genesis"
    segments = {s.ref.normal(): s for s in book_text.segments}
    assert "Rashi on Genesis 1:1:2" in segments
    assert segments["Rashi on Genesis 1:1:2"].he.startswith("בראשית ברא")


def test_html_stripped(text_files: dict[str, list[TextFile]]) -> None:
    segments = _segments(text_files, "Rashi on Genesis")
    for segment in segments.values():
        assert "<b>" not in segment.he  # type: ignore[attr-defined]
        assert "</b>" not in segment.en  # type: ignore[attr-defined]


def test_empty_segments_skipped(text_files: dict[str, list[TextFile]]) -> None:
    for segment in _segments(text_files, "Berakhot").values():
        assert segment.he or segment.en  # type: ignore[attr-defined]


def test_shape_counts_chapters(text_files: dict[str, list[TextFile]]) -> None:
    (book_text,) = build_book_texts(text_files["Genesis"])
    assert len(book_text.book.shape) == 50
    assert book_text.book.shape[0] == 31


def test_metadata_read_from_file_not_folder(tmp_path: Path, export_dir: Path) -> None:
    source = export_dir / "json/Tanach/Torah/Genesis/English/merged.json"
    moved = tmp_path / "elsewhere" / "whatever.json"
    moved.parent.mkdir()
    shutil.copy(source, moved)
    file = read_text_file(moved)
    assert file.title == "Genesis"
    assert file.language == "en"
    assert file.categories == ["Tanach", "Torah"]


def test_corrupt_json_raises_with_path(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"title": "Genesis", "text": [', encoding="utf-8")
    with pytest.raises(ExportError, match=r"broken\.json"):
        read_text_file(bad)


def test_missing_fields_raise(tmp_path: Path) -> None:
    bad = tmp_path / "nolang.json"
    bad.write_text(json.dumps({"title": "Genesis", "text": []}), encoding="utf-8")
    with pytest.raises(ExportError, match="missing language"):
        read_text_file(bad)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": 5}, "text must be a list"),
        ({"text": [[1, 2], [None, True]]}, "contains a int and no strings"),
        ({"priority": "high"}, "invalid field"),
        ({"categories": 5}, "categories must be a list"),
        ({"language": "fr"}, "unsupported language"),
    ],
)
def test_wrongly_typed_fields_raise(tmp_path: Path, fields: dict, message: str) -> None:  # type: ignore[type-arg]
    data = {"title": "Ruth", "language": "en", "text": [["In the days"]], **fields}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ExportError, match=message):
        read_text_file(bad)
