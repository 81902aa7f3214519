"""Read a Sefaria-Export tree (``json/**/<Language>/<version>.json``) into segments.

Everything is taken from inside each file (title, language, categories,
section names, version), never from folder names, because the export's folder
layout has changed over the years while the file format has not. Both the
2015 layout (``Tanach``, ``Commentary/…``) and the current one (``Tanakh``,
``Rishonim on Tanakh/…``, version files with ``actualLanguage``,
``isPrimary`` and other newer fields) are read. Translations into other
languages, which the current export files under ``English/`` with a suffix
such as ``[fr]`` in the version title, are recognised and left out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torah_study.library.catalog import Book
from torah_study.library.hebrew import strip_html
from torah_study.library.refs import Ref

logger = logging.getLogger(__name__)

LANGUAGES = ("he", "en")
# "Le Pentateuque [fr]": the language of a translation filed under English/.
_LANGUAGE_SUFFIX = re.compile(r"\[([a-z]{2,3})\]\s*$")


class ExportError(ValueError):
    """Raised for a file that is not a readable Sefaria text file."""


@dataclass
class TextFile:
    """One version of one book in one language, as stored in the export."""

    path: Path
    title: str
    he_title: str
    language: str
    categories: list[str]
    version_title: str
    version_source: str
    license: str
    section_names: list[str]
    text: Any
    priority: float = 0.0
    merged: bool = False
    digest: str = ""
    sources: list[str] = field(default_factory=list)
    # The language of the words themselves: "fr" for a French translation
    # that the export files as ``language: "en"``.
    actual_language: str = ""
    primary: bool = False
    schema: dict[str, Any] = field(default_factory=dict)

    @property
    def foreign(self) -> bool:
        """Tell whether the words are in a language other than Hebrew or English."""
        return bool(self.actual_language) and self.actual_language != self.language


def actual_language(data: dict[str, Any], language: str) -> str:
    """Return the language of a version's words, from the newer fields.

    ``actualLanguage`` wins; else a ``[xx]`` suffix of the version title;
    else ``language`` itself. Aramaic ("arc") and Judeo-Arabic texts filed
    as Hebrew count as Hebrew, as Sefaria shows them in the Hebrew column.
    """
    declared = data.get("actualLanguage")
    if isinstance(declared, str) and declared.strip():
        code = declared.strip().lower()
    else:
        match = _LANGUAGE_SUFFIX.search(str(data.get("versionTitle") or ""))
        code = match.group(1) if match else language
    if language == "he" and code in _HEBREW_COLUMN:
        return "he"
    return code


# Languages Sefaria files as Hebrew and shows in the Hebrew column.
_HEBREW_COLUMN = frozenset(["he", "arc", "jrb", "yi", "lad"])


@dataclass
class Segment:
    """The Hebrew and English of one ref, with where each came from."""

    ref: Ref
    he: str = ""
    en: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    licenses: dict[str, str] = field(default_factory=dict)


def find_text_files(export_dir: Path) -> list[Path]:
    """List the text files of an export; ``export_dir`` may be the tree or its json/."""
    root = export_dir / "json" if (export_dir / "json").is_dir() else export_dir
    if not root.is_dir():
        raise ExportError(
            f"Export folder not found: {export_dir}. Point it at a Sefaria-Export "
            "download (the folder that contains json/)."
        )
    return sorted(root.rglob("*.json"))


def read_text_file(path: Path) -> TextFile:
    """Read one export file; raise ExportError naming the path when it is unusable."""
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ExportError(f"{path}: invalid JSON ({error})") from error
    if not isinstance(data, dict):
        raise ExportError(
            f"{path}: expected a JSON object, found {type(data).__name__}"
        )
    missing = [k for k in ("title", "language", "text") if k not in data]
    if missing:
        raise ExportError(f"{path}: missing {', '.join(missing)}")
    language = data["language"]
    if language not in LANGUAGES:
        raise ExportError(f"{path}: unsupported language {language!r}")
    if not isinstance(data["text"], list | dict):
        raise ExportError(
            f"{path}: text must be a list or an object, "
            f"found {type(data['text']).__name__}"
        )
    # The export has stray placeholders (a 0 among Rashi's comments on
    # Eruvin), which are skipped, but a text with no string at all is broken.
    leaf = _invalid_leaf(data["text"])
    if leaf is not None and not _has_string(data["text"]):
        raise ExportError(f"{path}: text contains a {leaf} and no strings")
    try:
        return _text_file(path, raw, data, language)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError) as error:
        raise ExportError(f"{path}: invalid field ({error})") from error


def _has_string(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | dict):
        items = value.values() if isinstance(value, dict) else value
        return any(_has_string(item) for item in items)
    return False


def _invalid_leaf(value: Any) -> str | None:
    """Return the type name of the first leaf that is not a string (or null)."""
    if isinstance(value, str) or value is None:
        return None
    if isinstance(value, list | dict):
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            found = _invalid_leaf(item)
            if found is not None:
                return found
        return None
    return type(value).__name__


def _text_file(path: Path, raw: bytes, data: dict[str, Any], language: str) -> TextFile:
    section_names = data.get("sectionNames") or _schema_section_names(data)
    if not isinstance(data.get("categories") or [], list):
        raise ExportError(f"{path}: categories must be a list")
    return TextFile(
        path=path,
        title=str(data["title"]),
        he_title=str(data.get("heTitle") or data["title"]),
        language=language,
        categories=[str(c) for c in data.get("categories") or []],
        version_title=str(data.get("versionTitle") or path.stem),
        version_source=str(data.get("versionSource") or ""),
        license=str(data.get("license") or "unknown"),
        section_names=[str(s) for s in section_names],
        text=data["text"],
        priority=float(data.get("priority") or 0.0),
        merged=data.get("versionTitle") == "merged",
        digest=hashlib.sha256(raw).hexdigest(),
        sources=[str(v[0]) for v in data.get("versions") or [] if v],
        actual_language=actual_language(data, language),
        primary=bool(data.get("isPrimary")),
        schema=data["schema"] if isinstance(data.get("schema"), dict) else {},
    )


def _schema_section_names(data: dict[str, Any]) -> list[str]:
    schema = data.get("schema") or {}
    names = schema.get("sectionNames") if isinstance(schema, dict) else None
    if names:
        return list(names)
    depth = _depth(data.get("text"))
    return ["Section"] * max(depth, 1)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return max((_depth(v) for v in value.values()), default=0)
    return 0


def choose_versions(files: Sequence[TextFile]) -> dict[str, TextFile]:
    """Pick one version per language: merged.json first, then the primary one,
    then the highest priority. Translations into other languages are skipped.
    """
    chosen: dict[str, TextFile] = {}
    for file in files:
        if file.foreign:
            continue
        current = chosen.get(file.language)
        if current is None or _rank(file) > _rank(current):
            chosen[file.language] = file
    return chosen


def _rank(file: TextFile) -> tuple[bool, bool, float, str]:
    # Ties are broken by the version title, so runs are repeatable.
    return (file.merged, file.primary, file.priority, "~" + file.version_title[::-1])


def walk_text(
    text: Any, prefix: tuple[int, ...] = ()
) -> Iterator[tuple[tuple[int, ...], str]]:
    """Yield ``(positions, string)`` for every string in nested lists (1-based)."""
    if isinstance(text, str):
        yield prefix, text
        return
    if isinstance(text, list):
        for index, item in enumerate(text, start=1):
            yield from walk_text(item, (*prefix, index))


def shape_of(text: Any, depth: int) -> Any:
    """Return nested segment counts: ``[31, 25, …]`` for a chapter/verse book."""
    if not isinstance(text, list):
        return 0 if depth <= 1 else []
    if depth <= 1:
        return len(text)
    return [shape_of(item, depth - 1) for item in text]


def merge_shapes(a: Any, b: Any) -> Any:
    """Combine the shapes of two languages, keeping the longer at each level."""
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    if isinstance(a, int) or isinstance(b, int):
        return a if not isinstance(a, int) else b
    length = max(len(a), len(b))
    merged = []
    for i in range(length):
        left = a[i] if i < len(a) else None
        right = b[i] if i < len(b) else None
        merged.append(
            right
            if left is None
            else left
            if right is None
            else merge_shapes(left, right)
        )
    return merged


@dataclass
class BookText:
    """A book ready for indexing: its catalog entry and its segments."""

    book: Book
    segments: list[Segment]
    digest: str
    files: list[Path]


@dataclass
class Part:
    """One part of a book: the whole of a simple text, or one node of a complex one."""

    title: str
    he_title: str
    section_names: list[str]
    he_section_names: list[str] = field(default_factory=list)
    texts: dict[str, Any] = field(default_factory=dict)


def book_parts(
    files: Sequence[TextFile], schema: dict[str, Any] | None = None
) -> list[Part]:
    """Split the chosen versions into parts, one per node of a complex text.

    A complex text's ``text`` is an object keyed by node title, and a node may
    hold further nodes. Each node with text becomes a part titled "Title,
    Node, Subnode" (the default node, keyed ``""``, keeps the book's title),
    with the section names of its schema node. The schema comes from the file
    itself, else from ``schema`` (an index record of the export's
    ``schemas/`` folder); a node described by neither gets one "Section" name
    per level of its text.
    """
    chosen = choose_versions(files)
    parts: dict[str, Part] = {}
    for language, file in chosen.items():
        he_title = (chosen.get("he") or file).he_title
        if isinstance(file.text, dict):
            nodes = _schema_nodes(file.schema) or _schema_nodes(schema or {})
            for part, value in _walk_nodes(
                file.text, file.title, he_title, nodes, file.schema, schema
            ):
                found = parts.setdefault(part.title, part)
                found.texts[language] = value
        else:
            part = parts.setdefault(
                file.title, Part(file.title, he_title, file.section_names)
            )
            part.texts[language] = file.text
    return list(parts.values())


def _walk_nodes(
    text: dict[str, Any],
    title: str,
    he_title: str,
    nodes: list[dict[str, Any]],
    *fallbacks: dict[str, Any] | None,
) -> Iterator[tuple[Part, Any]]:
    """Yield each node of a complex text with its value, depth first."""
    for key, value in text.items():
        node = _find_node(nodes, str(key))
        node_title = f"{title}, {key}" if key else title
        he_node = _he_node_title(node) if node else ""
        node_he_title = (
            f"{he_title}, {he_node}"
            if key and he_node
            else (he_title if not key else node_title)
        )
        if isinstance(value, dict):
            children = _schema_nodes(node or {})
            yield from _walk_nodes(value, node_title, node_he_title, children)
            continue
        names = [str(n) for n in (node or {}).get("sectionNames") or []]
        he_names = [str(n) for n in (node or {}).get("heSectionNames") or []]
        if not names:
            for fallback in fallbacks:
                found = _find_node(_schema_nodes(fallback or {}), str(key))
                if found and found.get("sectionNames"):
                    names = [str(n) for n in found["sectionNames"]]
                    he_names = [str(n) for n in found.get("heSectionNames") or []]
                    break
        depth = max(_depth(value), 1)
        if len(names) != depth:
            # TODO: a schema whose depth disagrees with the text is read by the
            # text's depth, with generic names.
            names, he_names = ["Section"] * depth, []
        yield Part(node_title, node_he_title, names, he_names), value


def _schema_nodes(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the child nodes of a schema or schema node (index records nest it)."""
    if isinstance(schema.get("schema"), dict):
        schema = schema["schema"]
    nodes = schema.get("nodes")
    return [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []


def node_title(node: dict[str, Any]) -> str:
    """Return a schema node's English title; the default node's is ``""``."""
    if node.get("default") or node.get("key") == "default":
        return ""
    for name in ("title", "enTitle"):
        if isinstance(node.get(name), str):
            return str(node[name])
    return _primary_title(node, "en") or str(node.get("key") or "")


def _he_node_title(node: dict[str, Any]) -> str:
    if isinstance(node.get("heTitle"), str) and node["heTitle"]:
        return str(node["heTitle"])
    return _primary_title(node, "he")


def _primary_title(node: dict[str, Any], lang: str) -> str:
    """Return the primary title in ``lang`` from a node's ``titles`` list."""
    for entry in node.get("titles") or []:
        if (
            isinstance(entry, dict)
            and entry.get("lang") == lang
            and entry.get("primary")
        ):
            return str(entry.get("text") or "")
    return ""


def _find_node(nodes: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    for node in nodes:
        if node_title(node) == key:
            return node
    return None


def build_book_texts(
    files: Sequence[TextFile],
    order: int = 0,
    schema: dict[str, Any] | None = None,
) -> list[BookText]:
    """Merge the chosen Hebrew and English versions of a title into segments.

    ``schema`` is the title's index record, when the export has one: it
    names the sections of complex texts whose files do not.
    """
    chosen = choose_versions(files)
    if not chosen:
        return []
    first = chosen.get("en") or chosen["he"]
    digest = hashlib.sha256(
        "".join(sorted(f.digest for f in chosen.values())).encode()
    ).hexdigest()
    results: list[BookText] = []
    for part in book_parts(files, schema):
        title, texts, section_names = part.title, part.texts, part.section_names
        talmud = bool(section_names) and section_names[0] == "Daf"
        base, commentator = _commentary_of(title)
        he_title = part.he_title
        depth = len(section_names)
        shape: Any = []
        for value in texts.values():
            shape = (
                merge_shapes(shape, shape_of(value, depth))
                if shape
                else shape_of(value, depth)
            )
        book = Book(
            title=title,
            he_title=he_title,
            categories=first.categories,
            section_names=section_names,
            he_section_names=part.he_section_names,
            talmud=talmud,
            shape=shape,
            languages=sorted(texts),
            base_title=base,
            commentator=commentator,
            order=order,
        )
        by_position: dict[tuple[int, ...], Segment] = {}
        for language, value in texts.items():
            file = chosen[language]
            for position, raw in walk_text(value):
                if len(position) != depth:
                    continue
                cleaned = strip_html(raw)
                if not cleaned:
                    continue
                segment = by_position.get(position)
                if segment is None:
                    segment = Segment(book.ref(position))
                    by_position[position] = segment
                setattr(segment, language, cleaned)
                segment.versions[language] = _version_label(file)
                segment.licenses[language] = file.license
        segments = [by_position[p] for p in sorted(by_position)]
        results.append(
            BookText(book, segments, digest, [f.path for f in chosen.values()])
        )
    return results


def _version_label(file: TextFile) -> str:
    """Name the versions behind a segment; merged files list what they merged."""
    if file.merged and file.sources:
        return "; ".join(dict.fromkeys(file.sources))
    return file.version_title


def _commentary_of(title: str) -> tuple[str | None, str | None]:
    if " on " in title:
        commentator, base = title.split(" on ", 1)
        return base, commentator
    return None, None


def read_schema_titles(export_dir: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Read title variants and Hebrew section names from ``schemas/*.json``.

    Returns ``{title: (aliases, he_section_names)}``; unreadable schema files
    are logged and skipped because aliases only widen ref matching.
    """
    result: dict[str, tuple[list[str], list[str]]] = {}
    for data in read_schemas(export_dir):
        aliases = [*data.get("titleVariants", []), *data.get("heTitleVariants", [])]
        schema = data.get("schema") or {}
        aliases.extend(t["text"] for t in schema.get("titles", []) if "text" in t)
        he_names = list(schema.get("heSectionNames") or [])
        result[str(data["title"])] = (sorted(set(map(str, aliases))), he_names)
    return result


def read_schemas(export_dir: Path) -> Iterator[dict[str, Any]]:
    """Yield the index records of ``schemas/*.json`` that name a title.

    Unreadable files are logged and skipped: schemas only add names.
    """
    schema_dir = export_dir / "schemas"
    if not schema_dir.is_dir():
        return
    for path in sorted(schema_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            logger.warning("Skipping unreadable schema %s: %s", path, error)
            continue
        if isinstance(data, dict) and isinstance(data.get("title"), str):
            yield data
