"""Every Sefaria format, written by the tests from the real 2015 export.

The current export layout, the dataset dump (JSON Lines) and links CSVs are
produced here from real files of the corpus, then read back through the
ingester and compared with what the 2015 export itself gives.
"""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from torah_study.config import DEFAULT_DENSE_SCOPE, Settings
from torah_study.index.lance import LanceStore
from torah_study.ingest import in_scope, ingest
from torah_study.library import dump as dump_module
from torah_study.library.catalog import Catalog
from torah_study.library.dump import (
    DumpReport,
    DumpStaging,
    split_ref,
    staged_text_files,
)
from torah_study.library.export import (
    ExportError,
    build_book_texts,
    read_text_file,
    walk_text,
)
from torah_study.library.hebrew import strip_html
from torah_study.library.links import LinkIndex
from torah_study.library.refs import RefError, position_to_daf

pytestmark = pytest.mark.corpus

GENESIS = "json/Tanach/Torah/Genesis"
EXODUS = "json/Tanach/Torah/Exodus"
RASHI = "json/Commentary/Tanach/Torah/Genesis/Rashi on Genesis"
BERAKHOT = "json/Talmud/Bavli/Seder Zeraim/Berakhot"
AVOT = "json/Mishnah/Seder Nezikin/Pirkei Avot"
EIN_YAAKOV = "json/Midrash/Aggadic Midrash/Ein Yaakov/English/merged.json"
MEKHILTA = (
    "json/Midrash/Halachic Midrash/Mekhilta DeRabbi Shimon Bar Yochai/"
    "Hebrew/merged.json"
)
NEWER_FIELDS = {
    "languageFamilyName": "",
    "isBaseText": True,
    "isSource": True,
    "direction": "rtl",
    "versionTitleInHebrew": "",
}


class LetterEmbeddings:
    """A real but tiny embedding provider: letter counts, no model."""

    name = "letters"
    dimension = 8

    def _embed(self, texts: list[str]) -> Any:
        import numpy as np

        rows = [[text.count(c) + 1 for c in "aeiouלמנ"] for text in texts]
        matrix = np.asarray(rows, dtype=np.float32)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    def embed_queries(self, texts: list[str]) -> Any:
        return self._embed(list(texts))

    def embed_passages(self, texts: list[str]) -> Any:
        return self._embed(list(texts))


def _load(export_dir: Path, relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((export_dir / relative).read_text("utf-8"))
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _current(
    data: dict[str, Any], categories: list[str], **extra: Any
) -> dict[str, Any]:
    """Rewrite a 2015 version file with the current export's fields."""
    out = {**data, **NEWER_FIELDS, "categories": categories, **extra}
    out.setdefault("actualLanguage", data["language"])
    return out


@pytest.fixture(scope="module")
def current_export(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small export in today's layout, built from the real 2015 files."""
    root = tmp_path_factory.mktemp("current") / "export"
    tanakh = ["Tanakh", "Torah"]
    base = root / "json/Tanakh/Torah/Genesis"
    he = _load(export_dir, f"{GENESIS}/Hebrew/merged.json")
    _write(base / "Hebrew/merged.json", _current(he, tanakh))
    en = _load(export_dir, f"{GENESIS}/English/merged.json")
    _write(base / "English/merged.json", _current(en, tanakh, isPrimary=True))
    # A French version filed under English/, ranked above the English one: it
    # must be left out. It carries Exodus's words, so it would show if read.
    exodus = _load(export_dir, f"{EXODUS}/English/merged.json")
    french = _current(
        {**en, "text": exodus["text"], "versionTitle": "La Bible du Rabbinat [fr]"},
        tanakh,
        actualLanguage="fr",
        isPrimary=True,
        priority=99,
    )
    _write(base / "English/La Bible du Rabbinat fr.json", french)
    # The suffix alone also marks a translation.
    suffixed = {**french, "versionTitle": "Die Tora [de]"}
    del suffixed["actualLanguage"]
    _write(base / "English/Die Tora de.json", suffixed)

    rashi_dir = root / "json/Tanakh/Rishonim on Tanakh/Rashi/Torah/Rashi on Genesis"
    rashi = _load(export_dir, f"{RASHI}/Hebrew/On Your Way.json")
    rashi_categories = ["Tanakh", "Rishonim on Tanakh", "Rashi", "Torah"]
    _write(rashi_dir / "Hebrew/On Your Way.json", _current(rashi, rashi_categories))

    # Ein Yaakov with a nested node: its Berakhot node moved under "Seder
    # Zeraim", with section names in the schema as today's files have them.
    ein = _load(export_dir, EIN_YAAKOV)
    names = {"sectionNames": ["Chapter", "Paragraph"], "nodeType": "JaggedArrayNode"}
    ein["text"] = {
        "Seder Zeraim": {"Berakhot": ein["text"]["Berakhot"]},
        "Shabbat": ein["text"]["Shabbat"],
    }
    ein["schema"] = {
        "nodes": [
            {
                "title": "Seder Zeraim",
                "heTitle": "סדר זרעים",
                "nodes": [{"title": "Berakhot", "heTitle": "ברכות", **names}],
            },
            {"title": "Shabbat", "heTitle": "שבת", **names},
        ]
    }
    _write(
        root / "json/Midrash/Aggadah/Ein Yaakov/English/merged.json",
        _current(ein, ["Midrash", "Aggadah"]),
    )
    # Mekhilta's own file names no sections; the index record does.
    mekhilta = _load(export_dir, MEKHILTA)
    _write(
        root / "json/Midrash/Halakhic Midrash/Mekhilta/Hebrew/merged.json",
        _current(mekhilta, ["Midrash", "Halakhic Midrash"]),
    )
    schemas = root / "schemas"
    schemas.mkdir()
    for name in ("Mekhilta_DeRabbi_Shimon_Bar_Yochai.json", "Genesis.json"):
        (schemas / name).write_bytes((export_dir / "schemas" / name).read_bytes())
    return root


def _old_segment(export_dir: Path, folder: str, ref_start: tuple[int, ...]) -> Any:
    files = [read_text_file(p) for p in sorted((export_dir / folder).rglob("*.json"))]
    (book_text,) = build_book_texts(files)
    return next(s for s in book_text.segments if s.ref.start == ref_start)


def _ingest(tmp_path: Path, export: Path | None, **kwargs: Any) -> tuple[Settings, Any]:
    settings = Settings(
        data_dir=tmp_path / "data",
        dense_scope=(),
        embedding_workers=1,
        _env_file=None,  # type: ignore[call-arg]
    )
    report = ingest(
        settings, export, embeddings=LetterEmbeddings(), show_progress=False, **kwargs
    )
    return settings, report


# The current export layout ------------------------------------------------


def test_current_layout_reads_like_the_2015_export(
    current_export: Path, export_dir: Path, tmp_path: Path
) -> None:
    settings, report = _ingest(tmp_path, current_export)
    assert report.foreign_versions == 2
    catalog = Catalog.load(settings.catalog_path)
    store = LanceStore(settings.index_dir, dimension=8)
    (verse,) = store.get(["Genesis 1:1"])
    old = _old_segment(export_dir, GENESIS, (1, 1))
    assert (verse.he, verse.en) == (old.he, old.en)
    assert verse.categories == ["Tanakh", "Torah"]
    # The French version's words (Exodus 1:1) appear nowhere.
    exodus = _load(export_dir, f"{EXODUS}/English/merged.json")
    assert verse.en != strip_html(exodus["text"][0][0])
    assert catalog.books["Rashi on Genesis"].base_title == "Genesis"
    assert catalog.parse("Rashi on Genesis 1:1:1").normal() == "Rashi on Genesis 1:1:1"


def test_nested_nodes_become_parts_with_their_section_names(
    current_export: Path, export_dir: Path, tmp_path: Path
) -> None:
    settings, _ = _ingest(tmp_path, current_export)
    catalog = Catalog.load(settings.catalog_path)
    nested = catalog.books["Ein Yaakov, Seder Zeraim, Berakhot"]
    assert nested.section_names == ["Chapter", "Paragraph"]
    assert nested.he_title.endswith("סדר זרעים, ברכות")
    ref = catalog.parse("Ein Yaakov, Seder Zeraim, Berakhot 1:1")
    assert ref.normal() == "Ein Yaakov, Seder Zeraim, Berakhot 1:1"
    store = LanceStore(settings.index_dir, dimension=8)
    (record,) = store.get([ref.normal()])
    original = _load(export_dir, EIN_YAAKOV)["text"]["Berakhot"]
    first = next(text for _, text in walk_text(original) if strip_html(text))
    assert record.en == strip_html(first)
    assert "Ein Yaakov, Shabbat" in catalog.books
    # Section names from the index record, for a file whose schema has none.
    mekhilta = catalog.books["Mekhilta DeRabbi Shimon Bar Yochai"]
    assert mekhilta.section_names == ["Chapter", "Verse"]
    additions = catalog.books["Mekhilta DeRabbi Shimon Bar Yochai, Additions"]
    assert additions.section_names == ["Chapter", "Verse"]
    assert additions.he_title.endswith("הוספה")


def test_tanakh_and_tanach_are_one_category(current_export: Path) -> None:
    genesis = read_text_file(
        current_export / "json/Tanakh/Torah/Genesis/Hebrew/merged.json"
    )
    (book_text,) = build_book_texts([genesis])
    assert in_scope(book_text.book, DEFAULT_DENSE_SCOPE)
    assert in_scope(book_text.book, ("Tanach",))
    catalog = Catalog([book_text.book])
    assert catalog.resolve_filters([], ["Tanach"])[1] == ("Tanakh",)
    assert [b.title for b in catalog.books_in("Tanach")] == ["Genesis"]


# The dataset dump ---------------------------------------------------------


def _dump_rows(export_dir: Path, folder: str) -> list[dict[str, Any]]:
    """Turn the chosen versions of a 2015 book into dump rows."""
    files = [read_text_file(p) for p in sorted((export_dir / folder).rglob("*.json"))]
    rows = []
    for file in files:
        chosen = file.version_title == "merged" or "Rashi" in folder
        if not chosen:
            continue
        talmud = file.section_names[:1] == ["Daf"]
        for position, text in walk_text(file.text):
            if not text.strip():
                continue
            parts = [str(p) for p in position]
            if talmud:
                parts[0] = position_to_daf(position[0])
            ref = f"{file.title} {':'.join(parts)}"
            rows.append(
                {
                    "text": text,
                    "metadata": {
                        "url": f"https://www.sefaria.org/{ref.replace(' ', '_')}",
                        "ref": ref,
                        "versionTitle": file.version_title,
                        "lang": file.language,
                        "docCategory": file.categories[0].replace("Tanach", "Tanakh"),
                        "dataQuality": "professional",
                        "pagerank": 1.0,
                    },
                }
            )
    return rows


def _write_dump(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


@pytest.fixture(scope="module")
def dump_file(export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [
        *_dump_rows(export_dir, GENESIS),
        *_dump_rows(export_dir, RASHI),
        *_dump_rows(export_dir, AVOT),
    ]
    ein = _load(export_dir, EIN_YAAKOV)
    for position, text in walk_text(ein["text"]["Berakhot"]):
        if text.strip():
            ref = f"Ein Yaakov, Berakhot {':'.join(map(str, position))}"
            meta = {"ref": ref, "versionTitle": "Glick", "lang": "en"}
            rows.append({"text": text, "metadata": {**meta, "docCategory": "Midrash"}})
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    french = {**rows[0], "metadata": {**rows[0]["metadata"], "versionTitle": "X [fr]"}}
    # Malformed lines at known places (1-based): 3, 10, 11 and 20.
    lines.insert(2, '{"text": "unterminated')
    lines.insert(9, json.dumps({"text": "no metadata"}))
    lines.insert(
        10,
        json.dumps(
            {"text": rows[1]["text"], "metadata": {"ref": "Genesis", "lang": "he"}}
        ),
    )
    lines.insert(19, json.dumps(["a list"]))
    lines.insert(30, json.dumps(french, ensure_ascii=False))
    path = tmp_path_factory.mktemp("dump") / "sefaria.jsonl"
    _write_dump(path, lines)
    return path


def test_split_ref_reads_every_kind_of_address() -> None:
    assert split_ref("Genesis 1:1") == ("Genesis", (1, 1), False)
    assert split_ref("Berakhot 2a:3") == ("Berakhot", (3, 3), True)
    assert split_ref("Rashi on Genesis 1:1:1") == ("Rashi on Genesis", (1, 1, 1), False)
    assert split_ref("Ein Yaakov, Introduction 3") == (
        "Ein Yaakov, Introduction",
        (3,),
        False,
    )
    with pytest.raises(RefError):
        split_ref("Genesis")


def test_dump_ingests_like_the_export(
    dump_file: Path, export_dir: Path, tmp_path: Path
) -> None:
    settings, report = _ingest(tmp_path, None, dumps=[dump_file])
    assert [line for _, line, _ in report.dump.bad] == [3, 10, 11, 20]
    assert report.dump.foreign == 1
    store = LanceStore(settings.index_dir, dimension=8)
    (verse,) = store.get(["Genesis 1:1"])
    old = _old_segment(export_dir, GENESIS, (1, 1))
    assert (verse.he, verse.en) == (old.he, old.en)
    assert verse.categories == ["Tanakh"]
    catalog = Catalog.load(settings.catalog_path)
    assert catalog.books["Genesis"].section_names == ["Chapter", "Verse"]
    assert catalog.parse("Pirkei Avot 2:16").normal() == "Pirkei Avot 2:16"
    (avot,) = store.get(["Pirkei Avot 1:1"])
    assert avot.en == _old_segment(export_dir, AVOT, (1, 1)).en
    assert catalog.books["Rashi on Genesis"].base_title == "Genesis"
    assert (
        catalog.parse("Ein Yaakov, Berakhot 1:1").normal() == "Ein Yaakov, Berakhot 1:1"
    )
    # A rerun finds every book unchanged.
    _, again = _ingest(tmp_path, None, dumps=[dump_file])
    assert again.books_skipped == again.books > 0


def test_dump_uses_the_export_schemas_when_given(
    dump_file: Path, current_export: Path, tmp_path: Path
) -> None:
    settings, report = _ingest(tmp_path, current_export, dumps=[dump_file])
    catalog = Catalog.load(settings.catalog_path)
    # Genesis comes from the export; Pirkei Avot only from the dump.
    assert "Pirkei Avot" in catalog.books
    assert catalog.books["Genesis"].categories == ["Tanakh", "Torah"]
    assert report.dump.bad_count == 4


def test_dump_talmud_rows_group_by_daf(export_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "berakhot.jsonl"
    rows = _dump_rows(export_dir, BERAKHOT)
    _write_dump(path, [json.dumps(r, ensure_ascii=False) for r in rows])
    staging = DumpStaging(tmp_path / "staging.sqlite")
    staging.stage(path, DumpReport())
    files = staged_text_files(staging, "Berakhot", "Talmud", {}, path)
    (book_text,) = build_book_texts(files)
    assert book_text.book.talmud
    assert book_text.book.section_names == ["Daf", "Line"]
    first = book_text.segments[0]
    assert first.ref.normal() == "Berakhot 2a:1"
    old = _old_segment(export_dir, BERAKHOT, first.ref.start)
    assert (first.he, first.en) == (old.he, old.en)


def test_interrupted_staging_resumes(
    dump_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = DumpStaging(tmp_path / "clean.sqlite")
    clean.stage(dump_file, DumpReport())
    expected = clean.db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
    monkeypatch.setattr(dump_module, "COMMIT_EVERY", 100)
    real = dump_module.parse_line
    calls = {"n": 0}

    def failing(raw: bytes) -> Any:
        calls["n"] += 1
        if calls["n"] == 250:
            raise KeyboardInterrupt
        return real(raw)

    monkeypatch.setattr(dump_module, "parse_line", failing)
    staging = DumpStaging(tmp_path / "staging.sqlite")
    with pytest.raises(KeyboardInterrupt):
        staging.stage(dump_file, DumpReport())
    staging.close()
    monkeypatch.setattr(dump_module, "parse_line", real)
    staging = DumpStaging(tmp_path / "staging.sqlite")
    assert staging.progress(dump_file.resolve())[1] == 200
    report = DumpReport()
    staging.stage(dump_file, report)
    total = sum(1 for _ in dump_file.open("rb"))
    assert report.lines == total - 200
    assert staging.db.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == expected
    assert [line for _, line, _ in report.bad] == [3, 10, 11, 20]


def _peak_staging(path: Path, staging_path: Path) -> int:
    staging = DumpStaging(staging_path)
    tracemalloc.start()
    try:
        staging.stage(path, DumpReport())
        for title, category in staging.titles():
            build_book_texts(staged_text_files(staging, title, category, {}, path))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        staging.close()


def test_dump_memory_does_not_grow_with_the_file(
    export_dir: Path, tmp_path: Path
) -> None:
    # The whole of Torah in Hebrew and English (about 11,700 rows) against
    # Genesis alone: a book at a time is held, never the file.
    books = [p for p in sorted((export_dir / "json/Tanach/Torah").iterdir())]
    small = tmp_path / "small.jsonl"
    large = tmp_path / "large.jsonl"
    small_rows = _dump_rows(export_dir, str(books[1].relative_to(export_dir)))
    _write_dump(small, [json.dumps(r, ensure_ascii=False) for r in small_rows])
    with large.open("w", encoding="utf-8") as handle:
        for copy in range(3):
            for book in books:
                for row in _dump_rows(export_dir, str(book.relative_to(export_dir))):
                    # Three copies under three version titles: real rows, more
                    # of them.
                    row["metadata"]["versionTitle"] += f" {copy}"
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    large_size = large.stat().st_size
    assert large_size > 5 * small.stat().st_size
    small_peak = _peak_staging(small, tmp_path / "s.sqlite")
    large_peak = _peak_staging(large, tmp_path / "l.sqlite")
    assert large_peak < large_size / 2
    assert large_peak < 2 * small_peak + 2_000_000


# Links CSVs ---------------------------------------------------------------


def test_links_csv_outside_the_export(dump_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "more-links.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["Citation 1", "Citation 2", "Connection Type", "Text 1", "Text 2"]
        )
        writer.writerow(["Genesis 1:1-3", "Pirkei Avot 5:1", "reference", "", ""])
        writer.writerow(["Pirkei Avot 1:1", "", "quotation", "", ""])
        writer.writerow(["Amos 1:1", "Genesis 2:1", "", "", ""])
    settings, report = _ingest(tmp_path, None, dumps=[dump_file], links=[path])
    assert (report.links, report.links_skipped, report.links_bad) == (1, 1, 1)
    catalog = Catalog.load(settings.catalog_path)
    index = LinkIndex(settings.links_path, catalog)
    assert "Genesis 1:1-3" in [link.ref for link in index.related("Pirkei Avot 5:1")]
    assert "Pirkei Avot 5:1" in [link.ref for link in index.related("Genesis 1:2")]


def test_links_csv_next_to_a_dump_is_read(
    dump_file: Path, export_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "download"
    folder.mkdir()
    local = folder / dump_file.name
    local.write_bytes(dump_file.read_bytes())
    # Real rows of the export's links file, in the current export's split.
    with (export_dir / "links/links2.csv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    (folder / "links0.csv").write_text(
        "\n".join(",".join(f'"{c}"' for c in r) for r in rows[:50]) + "\n", "utf-8"
    )
    _, report = _ingest(tmp_path, None, dumps=[local])
    # None of those texts is in this library, so every row names a missing one.
    assert report.links_skipped == 49
    assert report.links == 0


# Dump lines and files that cannot be used --------------------------------


@pytest.fixture(scope="module")
def exodus_lines(export_dir: Path) -> list[str]:
    return [json.dumps(r, ensure_ascii=False) for r in _dump_rows(export_dir, EXODUS)]


def _row_with(line: str, **changes: Any) -> str:
    """Return a dump line with its text or ref replaced."""
    row = json.loads(line)
    if "text" in changes:
        row["text"] = changes["text"]
    if "ref" in changes:
        row["metadata"]["ref"] = changes["ref"]
    # ASCII escapes keep a lone surrogate as "\\ud800", as a dump contains it.
    return json.dumps(row)


def test_lone_surrogate_line_is_skipped_not_the_batch(
    exodus_lines: list[str], tmp_path: Path
) -> None:
    lines = list(exodus_lines)
    # "\ud800" is valid JSON but no UTF-8 text can hold it.
    lines.insert(4, _row_with(lines[4], text="before \ud800 after"))
    assert "\\ud800" in lines[4]
    path = tmp_path / "exodus.jsonl"
    _write_dump(path, lines)
    settings, report = _ingest(tmp_path, None, dumps=[path])
    assert [line for _, line, _ in report.dump.bad] == [5]
    assert "surrogate" in report.dump.bad[0][2]
    assert report.dump.staged == len(exodus_lines)
    (verse,) = LanceStore(settings.index_dir, dimension=8).get(["Exodus 20:13"])
    assert verse.en and verse.he


def test_huge_positions_are_bad_lines(exodus_lines: list[str], tmp_path: Path) -> None:
    lines = list(exodus_lines)
    lines.insert(0, _row_with(lines[0], ref="Exodus 300000000:1"))
    lines.insert(1, _row_with(lines[1], ref="Exodus 99999999999999999999999:1"))
    path = tmp_path / "exodus.jsonl"
    _write_dump(path, lines)
    settings, report = _ingest(tmp_path, None, dumps=[path])
    assert [line for _, line, _ in report.dump.bad] == [1, 2]
    assert all("above" in reason for _, _, reason in report.dump.bad)
    catalog = Catalog.load(settings.catalog_path)
    assert len(catalog.books["Exodus"].shape) == 40


def test_gzip_dump_is_read(exodus_lines: list[str], tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "exodus.jsonl.gz"
    path.write_bytes(gzip.compress("".join(f"{x}\n" for x in exodus_lines).encode()))
    settings, report = _ingest(tmp_path, None, dumps=[path])
    assert report.dump.bad_count == 0
    assert report.dump.staged == len(exodus_lines)
    assert "Exodus" in Catalog.load(settings.catalog_path).books


def test_other_compression_is_a_clear_error(
    exodus_lines: list[str], tmp_path: Path
) -> None:
    import bz2

    path = tmp_path / "exodus.jsonl.bz2"
    path.write_bytes(bz2.compress("".join(f"{x}\n" for x in exodus_lines).encode()))
    with pytest.raises(ExportError, match="compressed with bzip2"):
        _ingest(tmp_path, None, dumps=[path])


def test_file_without_a_dump_row_fails(export_dir: Path, tmp_path: Path) -> None:
    # A links CSV given as a dump: not one line is a dump row.
    path = tmp_path / "links.jsonl"
    rows = (export_dir / "links/links2.csv").read_text("utf-8").splitlines()[:40]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(ExportError, match=r"links.jsonl: none of its lines"):
        _ingest(tmp_path, None, dumps=[path])


def test_dump_folder_is_named_as_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "adir.jsonl"
    folder.mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        _ingest(tmp_path, None, dumps=[folder])


# Links from earlier runs and links sources that cannot be read -------------


def _links_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Citation 1", "Citation 2", "Connection Type"])
        writer.writerows(rows)
    return path


def test_run_without_links_keeps_the_stored_links(
    dump_file: Path, tmp_path: Path
) -> None:
    path = _links_csv(
        tmp_path / "more-links.csv", [["Genesis 1:1-3", "Pirkei Avot 5:1", "reference"]]
    )
    settings, first = _ingest(tmp_path, None, dumps=[dump_file], links=[path])
    assert first.links == 1

    _, again = _ingest(tmp_path, None, dumps=[dump_file])

    assert (again.links, again.links_kept) == (1, True)
    assert "kept from an earlier run" in again.summary()
    index = LinkIndex(settings.links_path, Catalog.load(settings.catalog_path))
    assert "Genesis 1:1-3" in [link.ref for link in index.related("Pirkei Avot 5:1")]


def test_missing_links_source_fails_before_writing(
    dump_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match=r"Links file not found: .*absent\.csv"):
        _ingest(tmp_path, None, dumps=[dump_file], links=[tmp_path / "absent.csv"])
    assert not (tmp_path / "data" / "catalog.json").exists()
    with pytest.raises(ExportError, match="has no links/ folder"):
        _ingest(tmp_path, None, dumps=[dump_file], links=[tmp_path])


def test_links_past_the_end_of_a_book_are_skipped(
    dump_file: Path, tmp_path: Path
) -> None:
    path = _links_csv(
        tmp_path / "links.csv",
        [
            ["Genesis 1:1", "Genesis 9999:1", "reference"],
            ["Genesis 1:1", "Pirkei Avot 1:1", "reference"],
        ],
    )
    settings, report = _ingest(tmp_path, None, dumps=[dump_file], links=[path])
    assert (report.links, report.links_skipped) == (1, 1)
    index = LinkIndex(settings.links_path, Catalog.load(settings.catalog_path))
    assert "Genesis 9999:1" not in [link.ref for link in index.related("Genesis 1:1")]
