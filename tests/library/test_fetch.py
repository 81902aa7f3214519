"""Tests of fetch_books against a local HTTP server that serves real export files."""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from torah_study.library.fetch import (
    COMMENTARY_CATEGORY,
    FetchError,
    FileProgress,
    TableOfContents,
    UnknownTitleError,
    export_file_url,
    fetch_books,
)

EXPORT_DIR = Path(
    os.environ.get("TORAH_STUDY_EXPORT_DIR", "/work/shared/corpus/sefaria-export-2015")
)

GENESIS = "json/Tanach/Torah/Genesis"
EXODUS = "json/Tanach/Torah/Exodus"
PIRKEI_AVOT = "json/Mishnah/Seder Nezikin/Pirkei Avot"
RASHI_ON_GENESIS = "json/Commentary/Tanach/Torah/Genesis/Rashi on Genesis"
SECOND_TITHES_TITLE = "Mishneh Torah, Second Tithes and Fourth Year's Fruit"
SECOND_TITHES = f"json/Halakhah/Mishneh Torah/Sefer Zeraim/{SECOND_TITHES_TITLE}"

# Folders copied whole, version files included, so the tests can check that only
# merged.json is fetched. Rashi on Genesis has only version files in this export,
# and the Mishneh Torah book has only Hebrew and a comma and apostrophe in its name.
EXPORT_FOLDERS = (GENESIS, EXODUS, PIRKEI_AVOT, RASHI_ON_GENESIS, SECOND_TITHES)
EXPORT_FILES = (
    "table_of_contents.json",
    "schemas/Genesis.json",
    "schemas/Exodus.json",
    "schemas/Pirkei_Avot.json",
    "schemas/Mishneh_Torah,_Second_Tithes_and_Fourth_Year's_Fruit.json",
)
GENESIS_FILES = (
    "table_of_contents.json",
    "schemas/Genesis.json",
    f"{GENESIS}/Hebrew/merged.json",
    f"{GENESIS}/English/merged.json",
)

corpus = pytest.mark.corpus


def _require_export() -> Path:
    if not (EXPORT_DIR / "table_of_contents.json").is_file():
        pytest.skip(f"no Sefaria export at {EXPORT_DIR} (set TORAH_STUDY_EXPORT_DIR)")
    return EXPORT_DIR


def _copy_file(source: Path, target: Path) -> None:
    # Files are copied one by one because copytree would copy the export's
    # read-only folder modes, and those would block the cleanup of tmp_path.
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


@pytest.fixture(scope="module")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = _require_export()
    root = tmp_path_factory.mktemp("export")
    for relative in EXPORT_FILES:
        _copy_file(source / relative, root / relative)
    for folder in EXPORT_FOLDERS:
        for path in (source / folder).rglob("*"):
            if path.is_file():
                _copy_file(path, root / path.relative_to(source))
    return root


@pytest.fixture(scope="module")
def toc(export_root: Path) -> TableOfContents:
    data = json.loads((export_root / "table_of_contents.json").read_bytes())
    return TableOfContents.from_json(data)


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files and records the raw request paths instead of logging them."""

    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def file_path(self) -> str:
        return unquote(urlsplit(self.path).path).lstrip("/")


def _handler(base: type[QuietHandler] = QuietHandler) -> type[QuietHandler]:
    """Subclass the handler so each server has its own request list."""
    return type("Handler", (base,), {"requests": []})


@contextmanager
def serve(root: Path, handler: type[QuietHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def server(export_root: Path) -> Iterator[tuple[str, type[QuietHandler]]]:
    handler = _handler()
    with serve(export_root, handler) as url:
        yield url, handler


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_export_file_url_encodes_parts() -> None:
    relative = PurePosixPath(SECOND_TITHES, "Hebrew", "merged.json")

    url = export_file_url("http://127.0.0.1:1/export/", relative)

    assert url == (
        "http://127.0.0.1:1/export/json/Halakhah/Mishneh%20Torah/Sefer%20Zeraim/"
        "Mishneh%20Torah%2C%20Second%20Tithes%20and%20Fourth%20Year%27s%20Fruit/"
        "Hebrew/merged.json"
    )


@corpus
def test_fetch_genesis_byte_identical(
    export_root: Path, server: tuple[str, type[QuietHandler]], tmp_path: Path
) -> None:
    base_url, _ = server

    report = fetch_books(["Genesis"], tmp_path, base_url=base_url, backoff=0)

    assert report.ok
    assert report.books == ["Genesis"]
    assert sorted(report.downloaded) == sorted(GENESIS_FILES)
    assert report.skipped == []
    assert report.missing_languages == {}
    assert report.missing_schemas == []
    # The version files beside merged.json are not fetched.
    assert _files_under(tmp_path) == set(GENESIS_FILES)
    for relative in GENESIS_FILES:
        assert (tmp_path / relative).read_bytes() == (
            export_root / relative
        ).read_bytes(), relative
    expected_bytes = sum((export_root / r).stat().st_size for r in GENESIS_FILES)
    assert report.bytes_downloaded == expected_bytes


@corpus
def test_fetch_title_ignores_case(
    server: tuple[str, type[QuietHandler]], tmp_path: Path
) -> None:
    base_url, _ = server

    report = fetch_books(["  gENESIS "], tmp_path, base_url=base_url, backoff=0)

    assert report.books == ["Genesis"]
    assert report.ok


@corpus
def test_fetch_category_reports_missing_books(
    server: tuple[str, type[QuietHandler]], tmp_path: Path
) -> None:
    base_url, _ = server

    report = fetch_books(["Torah"], tmp_path, base_url=base_url, backoff=0)

    assert report.books == ["Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy"]
    assert set(report.failed) == {"Leviticus", "Numbers", "Deuteronomy"}
    assert "merged.json" in report.failed["Leviticus"]
    assert "/json/Tanach/Torah/Leviticus/" in report.failed["Leviticus"]
    assert report.missing_languages["Numbers"] == ["Hebrew", "English"]
    assert set(report.missing_schemas) == {"Leviticus", "Numbers", "Deuteronomy"}
    for folder in (GENESIS, EXODUS):
        for language in ("Hebrew", "English"):
            assert (tmp_path / folder / language / "merged.json").is_file()
    assert not (tmp_path / "json/Tanach/Torah/Leviticus").exists()


@corpus
def test_fetch_mishnah_tractate(
    export_root: Path, server: tuple[str, type[QuietHandler]], tmp_path: Path
) -> None:
    base_url, _ = server

    report = fetch_books(["Pirkei Avot"], tmp_path, base_url=base_url, backoff=0)

    assert report.ok
    for language in ("Hebrew", "English"):
        relative = f"{PIRKEI_AVOT}/{language}/merged.json"
        assert (tmp_path / relative).read_bytes() == (
            export_root / relative
        ).read_bytes()


@corpus
def test_fetch_encodes_comma_and_apostrophe(
    export_root: Path, server: tuple[str, type[QuietHandler]], tmp_path: Path
) -> None:
    base_url, handler = server

    report = fetch_books([SECOND_TITHES_TITLE], tmp_path, base_url=base_url, backoff=0)

    # This book has no English text, which is reported but is not a failure.
    assert report.ok
    assert report.missing_languages == {SECOND_TITHES_TITLE: ["English"]}
    hebrew = f"{SECOND_TITHES}/Hebrew/merged.json"
    assert (tmp_path / hebrew).read_bytes() == (export_root / hebrew).read_bytes()
    schema = "schemas/Mishneh_Torah,_Second_Tithes_and_Fourth_Year's_Fruit.json"
    assert (tmp_path / schema).is_file()
    encoded_title = (
        "Mishneh%20Torah%2C%20Second%20Tithes%20and%20Fourth%20Year%27s%20Fruit"
    )
    assert any(encoded_title in path for path in handler.requests)
    assert not any(
        "," in path or "'" in path or " " in path for path in handler.requests
    )


@corpus
def test_fetch_version_only_book_fails(
    server: tuple[str, type[QuietHandler]], tmp_path: Path
) -> None:
    base_url, _ = server

    report = fetch_books(
        ["Rashi on Genesis", "Genesis"], tmp_path, base_url=base_url, backoff=0
    )

    assert not report.ok
    assert list(report.failed) == ["Rashi on Genesis"]
    reason = report.failed["Rashi on Genesis"]
    assert "no merged.json in Hebrew or English" in reason
    assert "Rashi%20on%20Genesis" in reason
    assert "per-version files" in reason
    assert not (tmp_path / RASHI_ON_GENESIS).exists()
    # The other book of the same call is still fetched.
    assert (tmp_path / GENESIS / "Hebrew" / "merged.json").is_file()


@corpus
def test_fetch_unknown_title_suggests(
    server: tuple[str, type[QuietHandler]], tmp_path: Path
) -> None:
    base_url, _ = server

    with pytest.raises(UnknownTitleError) as caught:
        fetch_books(["Genisis", "Exodus", "Qwxzzy"], tmp_path, base_url=base_url)

    assert caught.value.suggestions["Genisis"][0] == "Genesis"
    assert caught.value.suggestions["Qwxzzy"] == []
    assert "Exodus" not in caught.value.suggestions
    assert "did you mean Genesis" in str(caught.value)
    # Names are resolved before any book is downloaded.
    assert _files_under(tmp_path) == {"table_of_contents.json"}


@corpus
def test_fetch_rerun_skips_everything(
    export_root: Path, server: tuple[str, type[QuietHandler]], tmp_path: Path
) -> None:
    base_url, _ = server
    fetch_books(["Genesis"], tmp_path, base_url=base_url, backoff=0)

    again = fetch_books(["Genesis"], tmp_path, base_url=base_url, backoff=0)

    assert again.downloaded == []
    assert sorted(again.skipped) == sorted(GENESIS_FILES)
    assert again.bytes_downloaded == 0

    # A file whose size differs from the server's is fetched again.
    english = tmp_path / GENESIS / "English" / "merged.json"
    english.write_bytes(b"{}")

    third = fetch_books(["Genesis"], tmp_path, base_url=base_url, backoff=0)

    assert third.downloaded == [f"{GENESIS}/English/merged.json"]
    assert english.read_bytes() == (export_root / GENESIS_FILES[3]).read_bytes()


@corpus
def test_fetch_progress_events(
    server: tuple[str, type[QuietHandler]], tmp_path: Path
) -> None:
    base_url, _ = server
    events: list[FileProgress] = []

    fetch_books(
        ["Genesis"], tmp_path, base_url=base_url, progress=events.append, backoff=0
    )

    assert [event.path for event in events] == list(GENESIS_FILES)
    assert [event.done for event in events] == [1, 2, 3, 4]
    assert {event.total for event in events} == {4}
    assert {event.outcome for event in events} == {"downloaded"}
    assert events[2].size == (tmp_path / GENESIS_FILES[2]).stat().st_size


@corpus
def test_fetch_missing_toc_raises(
    server: tuple[str, type[QuietHandler]], tmp_path: Path
) -> None:
    base_url, _ = server

    with pytest.raises(FetchError, match=r"nowhere/table_of_contents\.json not found"):
        fetch_books(["Genesis"], tmp_path, base_url=f"{base_url}/nowhere")


def _failing_handler(path: str, failures: int) -> type[QuietHandler]:
    """Build a handler that returns HTTP 500 for the first ``failures`` GETs of path."""
    handler = _handler()
    state = {"failures_left": failures}
    lock = threading.Lock()

    def do_get(self: QuietHandler) -> None:
        if self.file_path() == path:
            with lock:
                fail = state["failures_left"] > 0
                state["failures_left"] -= 1
            if fail:
                self.requests.append(self.path)
                self.send_error(500, "Simulated failure")
                return
        QuietHandler.do_GET(self)

    handler.do_GET = do_get  # type: ignore[method-assign]
    return handler


def _requests_for(handler: type[QuietHandler], path: str) -> int:
    return sum(1 for raw in handler.requests if unquote(raw).lstrip("/") == path)


@corpus
def test_fetch_retries_server_errors(export_root: Path, tmp_path: Path) -> None:
    hebrew = f"{GENESIS}/Hebrew/merged.json"
    handler = _failing_handler(hebrew, failures=2)

    with serve(export_root, handler) as base_url:
        report = fetch_books(["Genesis"], tmp_path, base_url=base_url, backoff=0)

    assert report.ok
    assert _requests_for(handler, hebrew) == 3
    assert (tmp_path / hebrew).read_bytes() == (export_root / hebrew).read_bytes()


@corpus
def test_fetch_gives_up_after_three_tries(export_root: Path, tmp_path: Path) -> None:
    hebrew = f"{GENESIS}/Hebrew/merged.json"
    handler = _failing_handler(hebrew, failures=100)

    with serve(export_root, handler) as base_url:
        report = fetch_books(["Genesis"], tmp_path, base_url=base_url, backoff=0)

    assert _requests_for(handler, hebrew) == 3
    reason = report.failed["Genesis"]
    assert "after 3 tries" in reason
    assert "HTTP 500" in reason
    assert f"{base_url}/json/Tanach/Torah/Genesis/Hebrew/merged.json" in reason
    assert not (tmp_path / hebrew).exists()
    assert (tmp_path / GENESIS / "English" / "merged.json").is_file()


def _truncating_handler(path: str, truncations: int) -> type[QuietHandler]:
    """Build a handler that cuts the first ``truncations`` GETs of path in half."""
    handler = _handler()
    state = {"truncations_left": truncations}
    lock = threading.Lock()

    def do_get(self: QuietHandler) -> None:
        if self.file_path() == path:
            with lock:
                truncate = state["truncations_left"] > 0
                state["truncations_left"] -= 1
            if truncate:
                self.requests.append(self.path)
                body = Path(self.directory, path).read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
        QuietHandler.do_GET(self)

    handler.do_GET = do_get  # type: ignore[method-assign]
    return handler


@corpus
def test_fetch_truncated_leaves_no_partial_file(
    export_root: Path, tmp_path: Path
) -> None:
    hebrew = f"{GENESIS}/Hebrew/merged.json"
    handler = _truncating_handler(hebrew, truncations=100)

    with serve(export_root, handler) as base_url:
        report = fetch_books(["Genesis"], tmp_path, base_url=base_url, backoff=0)

    assert "Genesis" in report.failed
    assert _requests_for(handler, hebrew) == 3
    assert not (tmp_path / hebrew).exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]


@corpus
def test_fetch_truncated_keeps_old_file(export_root: Path, tmp_path: Path) -> None:
    hebrew = f"{GENESIS}/Hebrew/merged.json"
    old = tmp_path / hebrew
    old.parent.mkdir(parents=True)
    old.write_bytes(b'{"text": []}')
    handler = _truncating_handler(hebrew, truncations=100)

    with serve(export_root, handler) as base_url:
        fetch_books(["Genesis"], tmp_path, base_url=base_url, backoff=0)

    assert old.read_bytes() == b'{"text": []}'
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]


@corpus
def test_fetch_retries_truncated_body(export_root: Path, tmp_path: Path) -> None:
    hebrew = f"{GENESIS}/Hebrew/merged.json"
    handler = _truncating_handler(hebrew, truncations=1)

    with serve(export_root, handler) as base_url:
        report = fetch_books(["Genesis"], tmp_path, base_url=base_url, backoff=0)

    assert report.ok
    assert (tmp_path / hebrew).read_bytes() == (export_root / hebrew).read_bytes()


@corpus
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Torah", ["Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy"]),
        ("tanach/torah", ["Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy"]),
        ("Pesach Haggadah", ["Pesach Haggadah"]),
    ],
)
def test_resolve_names(toc: TableOfContents, name: str, expected: list[str]) -> None:
    assert [book.title for book in toc.resolve([name])] == expected


@corpus
def test_resolve_mishnah_without_commentary(toc: TableOfContents) -> None:
    books = toc.resolve(["Mishnah"])

    assert len(books) == 63
    assert "Pirkei Avot" in [book.title for book in books]
    assert all(book.categories[0] == "Mishnah" for book in books)


@corpus
def test_resolve_commentary_category(toc: TableOfContents) -> None:
    books = toc.resolve(["Tanach/Commentary/Rashi"])

    assert books[0].title == "Rashi on Genesis"
    assert str(books[0].folder) == RASHI_ON_GENESIS
    assert all(book.title.startswith("Rashi on ") for book in books)
    assert all(book.categories[0] == COMMENTARY_CATEGORY for book in books)


@corpus
def test_resolve_prefers_non_commentary(toc: TableOfContents) -> None:
    books = toc.resolve(["Mishneh Torah"])

    assert SECOND_TITHES_TITLE in [book.title for book in books]
    assert all(COMMENTARY_CATEGORY not in book.categories for book in books)


@corpus
def test_resolve_ambiguous_category(toc: TableOfContents) -> None:
    with pytest.raises(FetchError, match="several categories") as caught:
        toc.resolve(["Rashi"])

    assert "Tanach/Commentary/Rashi" in str(caught.value)
    assert "Talmud/Commentary/Rashi" in str(caught.value)


@corpus
def test_resolve_drops_repeats(toc: TableOfContents) -> None:
    books = toc.resolve(["Genesis", "Torah", "genesis"])

    assert [book.title for book in books][:2] == ["Genesis", "Exodus"]
    assert len(books) == 5


def test_fetch_rejects_empty_request(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="No titles"):
        fetch_books([], tmp_path, base_url="http://127.0.0.1:1")


def test_toc_without_books_raises() -> None:
    with pytest.raises(FetchError, match="no books"):
        TableOfContents.from_json([{"category": "Tanach", "contents": []}])


def test_cli_fetch_then_ingest(
    server: tuple[str, type[QuietHandler]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from torah_study.cli import main

    base_url, _ = server
    dest = tmp_path / "export"
    code = main(
        ["library", "fetch", "Pirkei Avot", "--dest", str(dest), "--base-url", base_url]
    )
    assert code == 0
    assert "export folder" in capsys.readouterr().out
    assert (
        dest / "json/Mishnah/Seder Nezikin/Pirkei Avot/Hebrew/merged.json"
    ).is_file()

    code = main(
        [
            "--data-dir", str(tmp_path / "data"), "ingest", "--quiet",
            "--export-dir", str(dest), "--dense-scope",
        ]
    )  # fmt: skip
    assert code == 0
    output = capsys.readouterr().out
    assert "books: 1 (0 unchanged)" in output


def test_cli_fetch_unknown_title_fails(
    server: tuple[str, type[QuietHandler]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from torah_study.cli import main

    base_url, _ = server
    code = main(
        [
            "library",
            "fetch",
            "Genesiss",
            "--dest",
            str(tmp_path),
            "--base-url",
            base_url,
        ]
    )
    assert code == 1
    assert "Genesis" in capsys.readouterr().err
