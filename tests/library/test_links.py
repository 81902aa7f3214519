"""Links from the export's CSV files and from the shape of commentaries."""

from pathlib import Path

from torah_study.library.catalog import Catalog
from torah_study.library.links import LinkIndex, build_links, read_link_rows


def test_link_rows_are_read_from_the_export(export_dir: Path) -> None:
    rows = list(read_link_rows(export_dir))
    assert len(rows) == 4399
    assert ("Amos 1:1", "Rashi on Amos 1:1:1", "commentary") in rows


def test_links_are_stored_both_ways(
    export_dir: Path, catalog: Catalog, tmp_path: Path
) -> None:
    path = tmp_path / "links.sqlite"
    report = build_links(export_dir, catalog, path)
    assert report.rows == 4399
    # Links to works outside the library (Tosafot, Metzudat David) are skipped.
    assert 0 < report.stored < report.rows
    assert report.stored + report.skipped == report.rows
    links = LinkIndex(path, catalog)
    forward = [(link.ref, link.kind) for link in links.related("Amos 1:1")]
    assert ("Rashi on Amos 1:1", "commentary") in forward
    # The comment-level link from the file is covered by the verse-level one.
    assert all(not ref.startswith("Rashi on Amos 1:1:") for ref, _ in forward)
    back = [link.ref for link in links.related("Rashi on Amos 1:1:1")]
    assert back == ["Amos 1:1"]


def test_commentaries_are_linked_without_a_file(
    catalog: Catalog, tmp_path: Path
) -> None:
    links = LinkIndex(tmp_path / "missing.sqlite", catalog)
    related = [link.ref for link in links.related("Genesis 1:1")]
    assert "Rashi on Genesis 1:1" in related
    # A verse with no Rashi gets no Rashi link.
    assert "Rashi on Genesis 1:3" not in [
        link.ref for link in links.related("Genesis 1:6")
    ]
    assert links.related("not a ref") == []


def test_links_rebuild_replaces_table(
    export_dir: Path, catalog: Catalog, tmp_path: Path
) -> None:
    path = tmp_path / "links.sqlite"
    first = build_links(export_dir, catalog, path)
    second = build_links(export_dir, catalog, path)
    assert first == second
    assert len(LinkIndex(path, catalog).related("Amos 1:1")) == len(
        LinkIndex(path, catalog).related("Amos 1:1")
    )


def test_links_comment_to_base_text(catalog: Catalog, tmp_path: Path) -> None:
    links = LinkIndex(tmp_path / "missing.sqlite", catalog)
    related = [
        (link.ref, link.kind) for link in links.related("Rashi on Genesis 1:1:2")
    ]
    assert related[0] == ("Genesis 1:1", "base")
