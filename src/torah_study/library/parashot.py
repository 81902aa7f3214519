"""The weekly Torah portions (parashot) as the library's schemas divide them.

Each of the five books of the Torah lists its parashot, in order, under the
``Parasha`` alternate structure of its schema, with the refs of the seven
readings (aliyot). Ingestion saves them to ``parashot.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from torah_study.library.files import atomic_write_text

logger = logging.getLogger(__name__)

TORAH = ("Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy")
# The yearly cycle has 54 parashot, from Bereshit to V'Zot HaBerachah.
PARASHOT_IN_CYCLE = 54


@dataclass(frozen=True)
class Parashah:
    number: int  # 0 for Bereshit, in reading order
    name: str
    he_name: str
    book: str
    aliyot: tuple[str, ...]

    @property
    def ref(self) -> str:
        """The whole portion: the first aliyah's start to the last one's end."""
        first = self.aliyot[0].split("-")[0]
        last = self.aliyot[-1]
        end = last.split("-")[-1] if "-" in last else last.rsplit(" ", 1)[-1]
        if ":" not in end:
            # "Genesis 5:25-32": the end names only a verse of the same chapter.
            chapter = last.rsplit(" ", 1)[-1].split(":")[0]
            end = f"{chapter}:{end}"
        return f"{first}-{end}"


def read_parashot(export_dir: Path) -> list[Parashah]:
    """Read the parashot of the five books from ``schemas/``, in reading order.

    Returns an empty list when the schemas are missing or unreadable, since
    the rest of the library works without them.
    """
    result: list[Parashah] = []
    for book in TORAH:
        path = export_dir / "schemas" / f"{book}.json"
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            nodes = schema["alts"]["Parasha"]["nodes"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("No parashot for %s in %s: %s", book, path, error)
            return []
        for node in nodes:
            result.append(
                Parashah(
                    number=len(result),
                    name=str(node["sharedTitle"]),
                    he_name=str(node.get("heTitle") or ""),
                    book=book,
                    aliyot=tuple(
                        str(ref).replace("\u2013", "-") for ref in node["refs"]
                    ),
                )
            )
    if len(result) != PARASHOT_IN_CYCLE:
        logger.warning(
            "Expected %d parashot in the schemas, found %d; skipping them",
            PARASHOT_IN_CYCLE,
            len(result),
        )
        return []
    return result


def save_parashot(parashot: list[Parashah], path: Path) -> None:
    payload = [asdict(parashah) for parashah in parashot]
    atomic_write_text(path, json.dumps(payload, ensure_ascii=False, indent=1))


def load_parashot(path: Path) -> list[Parashah]:
    """Load the saved parashot; an empty list when there are none."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    return [
        Parashah(
            number=int(item["number"]),
            name=str(item["name"]),
            he_name=str(item["he_name"]),
            book=str(item["book"]),
            aliyot=tuple(item["aliyot"]),
        )
        for item in payload
    ]
