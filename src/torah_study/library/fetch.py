"""Download chosen books of a Sefaria-Export tree over HTTP into a local folder.

The local copy keeps the export's relative layout, so the ingester reads it the
same way it reads a full checkout of Sefaria-Export.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, NamedTuple
from urllib.parse import quote

import httpx

from torah_study import __version__

logger = logging.getLogger(__name__)

# Sefaria's GitHub repository of the export. The current export also lives in a
# cloud storage bucket, and this setting can point at any server that serves the
# same tree.
DEFAULT_EXPORT_URL = "https://raw.githubusercontent.com/Sefaria/Sefaria-Export/master"

TOC_PATH = PurePosixPath("table_of_contents.json")
LANGUAGES = ("Hebrew", "English")
MERGED_FILE_NAME = "merged.json"
COMMENTARY_CATEGORY = "Commentary"

_RETRY_STATUS_MIN = 500
_TOO_MANY_REQUESTS = 429
_NOT_FOUND = 404
_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
_CHUNK_SIZE = 1 << 16
_MAX_SUGGESTIONS = 5

FileOutcome = Literal["downloaded", "skipped", "missing", "failed"]


class FetchError(RuntimeError):
    """Raised when the table of contents or a requested name cannot be used."""


class UnknownTitleError(FetchError):
    """Raised when requested names are neither titles nor categories of the export.

    ``suggestions`` maps each unknown name to its close matches (possibly none).
    """

    def __init__(self, suggestions: dict[str, list[str]]) -> None:
        self.suggestions = suggestions
        lines = []
        for name, matches in suggestions.items():
            hint = (
                f"did you mean {', '.join(matches)}?" if matches else "no close match"
            )
            lines.append(f"{name!r} ({hint})")
        super().__init__(
            "Unknown title or category in table_of_contents.json: " + "; ".join(lines)
        )


@dataclass(frozen=True)
class Book:
    """A leaf of the table of contents: a title and the categories of its folder."""

    title: str
    categories: tuple[str, ...]

    @property
    def folder(self) -> PurePosixPath:
        return PurePosixPath("json", *self.categories, self.title)

    @property
    def schema_path(self) -> PurePosixPath:
        return PurePosixPath("schemas", self.title.replace(" ", "_") + ".json")

    def merged_path(self, language: str) -> PurePosixPath:
        return self.folder / language / MERGED_FILE_NAME


class TableOfContents:
    """The books and categories of ``table_of_contents.json``, with name lookup."""

    def __init__(
        self,
        entries: Sequence[tuple[tuple[str, ...], Book]],
        category_paths: Sequence[tuple[str, ...]],
    ) -> None:
        # Each entry pairs a book with the chain of category nodes that nest it in
        # the file. That chain can differ from ``Book.categories``. For example, Rashi
        # on Genesis is nested under Tanach/Commentary/Rashi but lives in
        # json/Commentary/Tanach/Torah/Genesis.
        self._entries = list(entries)
        self._category_paths = list(category_paths)
        self._by_title = {book.title.casefold(): book for _, book in self._entries}

    @classmethod
    def from_json(cls, data: Any) -> TableOfContents:
        """Build the lookup from the parsed file, a nested list of category nodes."""
        entries: list[tuple[tuple[str, ...], Book]] = []
        category_paths: list[tuple[str, ...]] = []

        def walk(node: Any, path: tuple[str, ...]) -> None:
            if isinstance(node, list):
                for child in node:
                    walk(child, path)
            elif isinstance(node, dict):
                if isinstance(node.get("category"), str):
                    child_path = (*path, node["category"])
                    category_paths.append(child_path)
                    walk(node.get("contents", []), child_path)
                elif isinstance(node.get("title"), str):
                    categories = node.get("categories")
                    if not isinstance(categories, list):
                        # Leaves without their own list sit in the folder of
                        # their nesting.
                        categories = list(path)
                    book = Book(node["title"], tuple(str(c) for c in categories))
                    entries.append((path, book))

        walk(data, ())
        if not entries:
            raise FetchError("table_of_contents.json lists no books")
        return cls(entries, category_paths)

    @property
    def books(self) -> list[Book]:
        return [book for _, book in self._entries]

    def resolve(self, names: Sequence[str]) -> list[Book]:
        """Turn titles and category names into books, in order and without repeats.

        Matching ignores case, and a title wins over a category of the same name.
        A category is a name ("Torah") or a path of names ("Tanach/Torah") that
        matches the end of a category's path. When several categories match, the
        one outside a Commentary category wins. A category brings every book below
        it, except books inside nested Commentary categories, so "Mishnah" gives
        the tractates without Bartenura. Raises FetchError when a name matches
        several categories and UnknownTitleError when names match nothing.
        """
        books: dict[Book, None] = {}
        unknown: dict[str, list[str]] = {}
        for name in names:
            found = self._resolve_one(name)
            if found is None:
                unknown[name] = self._suggest(name)
                continue
            for book in found:
                books[book] = None
        if unknown:
            raise UnknownTitleError(unknown)
        return list(books)

    def _resolve_one(self, name: str) -> list[Book] | None:
        book = self._by_title.get(name.strip().casefold())
        if book is not None:
            return [book]

        requested_path = tuple(
            p.strip().casefold() for p in name.split("/") if p.strip()
        )
        if not requested_path:
            return None
        matches = [
            path
            for path in self._category_paths
            if tuple(p.casefold() for p in path[-len(requested_path) :])
            == requested_path
        ]
        if len(matches) > 1:
            outside_commentary = [p for p in matches if COMMENTARY_CATEGORY not in p]
            if len(outside_commentary) == 1:
                matches = outside_commentary
        if not matches:
            return None
        if len(matches) > 1:
            choices = ", ".join("/".join(path) for path in matches)
            raise FetchError(
                f"{name!r} matches several categories: {choices}. "
                "Request one of them by its path."
            )

        category = matches[0]
        include_commentary = COMMENTARY_CATEGORY in category
        found = [
            book
            for path, book in self._entries
            if path[: len(category)] == category
            and (include_commentary or COMMENTARY_CATEGORY not in path[len(category) :])
        ]
        if not found:
            raise FetchError(f"Category {'/'.join(category)!r} contains no books")
        return found

    def _suggest(self, name: str) -> list[str]:
        candidates: dict[str, str] = {}
        for path in self._category_paths:
            candidates.setdefault(path[-1].casefold(), path[-1])
        for _, book in self._entries:
            candidates[book.title.casefold()] = book.title
        close = difflib.get_close_matches(
            name.strip().casefold(), list(candidates), n=_MAX_SUGGESTIONS
        )
        return [candidates[match] for match in close]


@dataclass
class FetchReport:
    """The outcome of one fetch. Paths are POSIX paths relative to ``dest``."""

    books: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_downloaded: int = 0
    missing_schemas: list[str] = field(default_factory=list)
    # Title to the languages whose merged.json the server does not have.
    missing_languages: dict[str, list[str]] = field(default_factory=dict)
    # Title to the reason it could not be fetched.
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class FileProgress:
    """One file handled by a fetch, passed to the progress callback."""

    path: str
    outcome: FileOutcome
    size: int
    done: int
    total: int


ProgressCallback = Callable[[FileProgress], None]


def export_file_url(base_url: str, relative_path: PurePosixPath) -> str:
    """Join the export's base URL and a path inside it, percent-encoding each part.

    Titles contain spaces, commas, apostrophes and parentheses, so every character
    outside the URL's unreserved set is encoded.
    """
    encoded = "/".join(quote(part, safe="") for part in relative_path.parts)
    return f"{base_url.rstrip('/')}/{encoded}"


def fetch_books(
    titles: Sequence[str],
    dest: Path,
    *,
    base_url: str,
    client: httpx.Client | None = None,
    progress: ProgressCallback | None = None,
    retries: int = 3,
    backoff: float = 1.0,
) -> FetchReport:
    """Download the named books from the export at ``base_url`` into ``dest``.

    ``titles`` contains book titles or category names (see ``TableOfContents.resolve``).
    ``dest`` receives table_of_contents.json and, for each book, its
    schemas/<Title_with_underscores>.json and the Hebrew and English merged.json,
    at the same relative paths as on the server. Only merged.json is fetched,
    because plain HTTP cannot list the per-version files next to it, so a book
    that exists only as version files fails.

    A missing schema or one missing language is reported and tolerated. A book
    fails when both languages are missing or a file cannot be downloaded, and the
    other books are still fetched. Files are written through a temporary file and
    renamed, so an interrupted download leaves no partial file at the final path
    (a killed process can leave a hidden ".part" file beside it). A local file
    whose size equals the server's Content-Length is skipped, so a second run
    resumes. The skip does not compare contents. A request that fails with a 5xx
    or 429 status or a transport error (timeout, reset, truncated body) is tried
    ``retries`` times in all, waiting ``backoff`` seconds and doubling after each
    try.

    Raises FetchError when the table of contents cannot be downloaded or parsed or
    a name matches several categories, and UnknownTitleError (a FetchError) for
    unknown names. Both are raised before any book is downloaded.
    """
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    if not titles:
        raise FetchError("No titles or categories requested")

    own_client = client is None
    http = client if client is not None else _make_client()
    try:
        fetcher = _Fetcher(http, Path(dest), base_url, progress, retries, backoff)
        return fetcher.run(titles)
    finally:
        if own_client:
            http.close()


def _make_client() -> httpx.Client:
    return httpx.Client(
        timeout=_TIMEOUT,
        follow_redirects=True,
        headers={"User-Agent": f"torah-study/{__version__}"},
    )


class _Download(NamedTuple):
    outcome: FileOutcome
    size: int


class _TransientError(Exception):
    """A failed try that may succeed when repeated."""


class _Fetcher:
    """The state of one fetch_books call."""

    def __init__(
        self,
        client: httpx.Client,
        dest: Path,
        base_url: str,
        progress: ProgressCallback | None,
        retries: int,
        backoff: float,
    ) -> None:
        self.client = client
        self.dest = dest
        self.base_url = base_url
        self.progress = progress
        self.retries = retries
        self.backoff = backoff
        self.report = FetchReport()
        self.done = 0
        self.total = 1

    def run(self, names: Sequence[str]) -> FetchReport:
        toc_result = self._download(TOC_PATH)
        toc_url = export_file_url(self.base_url, TOC_PATH)
        if toc_result.outcome == "missing":
            raise FetchError(
                f"{toc_url} not found (HTTP 404). Check the export base URL."
            )
        books = self._read_toc(toc_url).resolve(names)
        self.report.books = [book.title for book in books]
        self.total = 1 + len(books) * (1 + len(LANGUAGES))
        self._record(TOC_PATH, toc_result)

        logger.info(
            "Fetching %d books from %s into %s", len(books), self.base_url, self.dest
        )
        for book in books:
            self._fetch_book(book)
        logger.info(
            "Fetch finished: %d downloaded, %d skipped, %d failed",
            len(self.report.downloaded),
            len(self.report.skipped),
            len(self.report.failed),
        )
        return self.report

    def _read_toc(self, toc_url: str) -> TableOfContents:
        local = self.dest / TOC_PATH
        try:
            data = json.loads(local.read_bytes())
        except (OSError, ValueError) as error:
            raise FetchError(
                f"Cannot read {local} (downloaded from {toc_url}): {error}. "
                "Delete it and fetch again."
            ) from error
        return TableOfContents.from_json(data)

    def _fetch_book(self, book: Book) -> None:
        errors: list[str] = []

        schema = self._fetch_file(book.schema_path, errors)
        if schema.outcome == "missing":
            self.report.missing_schemas.append(book.title)

        missing: list[str] = []
        for language in LANGUAGES:
            result = self._fetch_file(book.merged_path(language), errors)
            if result.outcome == "missing":
                missing.append(language)
        if missing:
            self.report.missing_languages[book.title] = missing

        if errors:
            self.report.failed[book.title] = "; ".join(errors)
        elif len(missing) == len(LANGUAGES):
            folder_url = export_file_url(self.base_url, book.folder)
            self.report.failed[book.title] = (
                f"no {MERGED_FILE_NAME} in Hebrew or English under {folder_url}/ "
                f"(only {MERGED_FILE_NAME} is fetched, because per-version files "
                "cannot be listed over HTTP)"
            )
        if book.title in self.report.failed:
            logger.error(
                "Fetching %r failed: %s", book.title, self.report.failed[book.title]
            )

    def _fetch_file(self, relative: PurePosixPath, errors: list[str]) -> _Download:
        try:
            result = self._download(relative)
        except FetchError as error:
            errors.append(str(error))
            result = _Download("failed", 0)
        self._record(relative, result)
        return result

    def _record(self, relative: PurePosixPath, result: _Download) -> None:
        if result.outcome == "downloaded":
            self.report.downloaded.append(str(relative))
            self.report.bytes_downloaded += result.size
        elif result.outcome == "skipped":
            self.report.skipped.append(str(relative))
        self.done += 1
        if self.progress is not None:
            event = FileProgress(
                str(relative), result.outcome, result.size, self.done, self.total
            )
            self.progress(event)

    def _download(self, relative: PurePosixPath) -> _Download:
        url = export_file_url(self.base_url, relative)
        target = self._local_path(relative)
        for attempt in range(1, self.retries + 1):
            try:
                return self._try_download(url, target)
            except (httpx.TransportError, _TransientError) as error:
                reason = str(error) or type(error).__name__
                if attempt == self.retries:
                    raise FetchError(
                        f"GET {url} failed after {self.retries} tries: {reason}"
                    ) from error
                delay = self.backoff * 2 ** (attempt - 1)
                logger.warning(
                    "GET %s failed (%s), try %d of %d, retrying in %.1f s",
                    url,
                    reason,
                    attempt,
                    self.retries,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable: the last try returns or raises")

    def _local_path(self, relative: PurePosixPath) -> Path:
        # Titles and categories come from the server, so a part such as ".." or
        # one with a separator must not lead outside dest.
        if relative.is_absolute():
            raise FetchError(f"Unsafe path {str(relative)!r} in the export")
        for part in relative.parts:
            if part == ".." or "\\" in part or "\0" in part:
                raise FetchError(f"Unsafe path {str(relative)!r} in the export")
        return self.dest.joinpath(*relative.parts)

    def _try_download(self, url: str, target: Path) -> _Download:
        # Identity encoding makes Content-Length the file's size, which the
        # skip check and the completeness check compare against.
        headers = {"Accept-Encoding": "identity"}
        with self.client.stream(
            "GET", url, headers=headers, follow_redirects=True
        ) as response:
            status = response.status_code
            if status == _NOT_FOUND:
                return _Download("missing", 0)
            if status >= _RETRY_STATUS_MIN or status == _TOO_MANY_REQUESTS:
                raise _TransientError(f"HTTP {status} {response.reason_phrase}")
            if response.is_error:
                raise FetchError(
                    f"GET {url} failed: HTTP {status} {response.reason_phrase}"
                )

            expected = _content_length(response)
            if (
                expected is not None
                and target.is_file()
                and target.stat().st_size == expected
            ):
                return _Download("skipped", expected)
            size = _write_atomically(response, target, expected)
            return _Download("downloaded", size)


def _content_length(response: httpx.Response) -> int | None:
    """Return the body size in bytes, or None when the server did not state it."""
    encoding = response.headers.get("Content-Encoding", "identity").lower()
    if encoding != "identity":
        return None
    try:
        length = int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        return None
    return length if length >= 0 else None


def _write_atomically(
    response: httpx.Response, target: Path, expected: int | None
) -> int:
    """Write the body to a temporary file beside target, then rename it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    size = 0
    try:
        with temporary.open("xb") as output:
            for chunk in response.iter_bytes(_CHUNK_SIZE):
                output.write(chunk)
                size += len(chunk)
            # httpx's HTTP/1.1 parser already raises on a body shorter than
            # Content-Length. This check keeps the guarantee for any transport.
            if expected is not None and response.num_bytes_downloaded != expected:
                raise _TransientError(
                    f"incomplete body: received {response.num_bytes_downloaded} "
                    f"of {expected} bytes"
                )
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return size
