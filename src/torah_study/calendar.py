"""This week's Torah portion, computed locally, with questions the library answers.

The Hebrew calendar and the reading schedule (Israel or the diaspora) come
from pyluach; the portions' names and refs come from the library's schemas.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pyluach import dates, parshios

from torah_study.library.catalog import Catalog
from torah_study.library.hebrew import strip_marks
from torah_study.library.parashot import Parashah
from torah_study.library.refs import Ref, RefError
from torah_study.retrieval.retriever import Retriever

logger = logging.getLogger(__name__)

SATURDAY = 5  # date.weekday()
# A Shabbat that falls on a festival has no portion. The next portion comes
# within a few weeks, because Pesach and Sukkot take at most two Shabbatot.
MAX_WEEKS_AHEAD = 4
TOPIC_WORDS = 8


class CalendarUnavailable(RuntimeError):
    """The library has no portions: it was ingested without the schemas."""


@dataclass(frozen=True)
class Reading:
    shabbat: date
    hebrew_date: str
    hebrew_date_he: str
    parashot: tuple[Parashah, ...]

    @property
    def name(self) -> str:
        return "-".join(p.name for p in self.parashot)

    @property
    def he_name(self) -> str:
        return "-".join(p.he_name for p in self.parashot)


def next_shabbat(day: date) -> date:
    """Return the Saturday on or after ``day``."""
    return day + timedelta(days=(SATURDAY - day.weekday()) % 7)


def _hebrew_date(day: date) -> tuple[str, str, dates.GregorianDate]:
    gregorian = dates.GregorianDate(day.year, day.month, day.day)
    hebrew = gregorian.to_heb()
    english = f"{hebrew.day} {hebrew.month_name()} {hebrew.year}"
    return english, hebrew.hebrew_date_string(), gregorian


class PortionCalendar:
    """Weekly portions and suggested questions, cached per Shabbat and calendar."""

    def __init__(
        self, parashot: list[Parashah], catalog: Catalog, retriever: Retriever
    ) -> None:
        self.parashot = parashot
        self.catalog = catalog
        self.retriever = retriever
        self._questions: dict[int, list[dict[str, str]]] = {}
        self._lock = threading.Lock()

    def week(self, day: date, diaspora: bool) -> dict[str, Any]:
        """This week's reading for ``day``: the portion read on the coming Shabbat.

        When that Shabbat is a festival with its own reading, ``holiday``
        names it and the portion is the next one read on a Shabbat.
        """
        if not self.parashot:
            raise CalendarUnavailable(
                "The library has no weekly portions: run `torah-study ingest` "
                "with an export that has schemas/."
            )
        shabbat = next_shabbat(day)
        holiday: str | None = None
        for week in range(MAX_WEEKS_AHEAD + 1):
            candidate = shabbat + timedelta(weeks=week)
            english, hebrew, gregorian = _hebrew_date(candidate)
            numbers = parshios.getparsha(gregorian, israel=not diaspora)
            if numbers:
                break
            if week == 0:
                holiday = gregorian.to_heb().holiday(israel=not diaspora)
        else:  # pragma: no cover - the schedule never skips that long
            raise CalendarUnavailable(f"No portion within {MAX_WEEKS_AHEAD} weeks.")
        reading = Reading(
            candidate, english, hebrew, tuple(self.parashot[n] for n in numbers)
        )
        return {
            "date": day.isoformat(),
            "diaspora": diaspora,
            "holiday": holiday,
            "shabbat": reading.shabbat.isoformat(),
            "hebrew_date": reading.hebrew_date,
            "hebrew_date_he": reading.hebrew_date_he,
            "name": reading.name,
            "he_name": reading.he_name,
            "parashot": [
                {
                    "name": p.name,
                    "he_name": p.he_name,
                    "book": p.book,
                    "ref": p.ref,
                    "he_ref": self._hebrew_ref(p.ref),
                    "aliyot": list(p.aliyot),
                }
                for p in reading.parashot
            ],
            "questions": self.questions(reading.parashot[0]),
        }

    def questions(self, parashah: Parashah) -> list[dict[str, str]]:
        """Three questions about ``parashah`` whose sources the library finds."""
        with self._lock:
            cached = self._questions.get(parashah.number)
        if cached is not None:
            return cached
        found = self._make_questions(parashah)
        with self._lock:
            self._questions[parashah.number] = found
        return found

    def _make_questions(self, parashah: Parashah) -> list[dict[str, str]]:
        try:
            portion = self.catalog.parse(parashah.ref)
        except RefError:
            logger.warning("%s is not in the library; no questions", parashah.ref)
            return []
        opening = _first_verse(parashah.aliyot[0])
        middle = _first_verse(parashah.aliyot[len(parashah.aliyot) // 2])
        candidates: list[dict[str, str]] = [
            {
                "en": f"What does {opening} say?",
                "he": f"מה כתוב ב{self._hebrew_ref(opening)}?",
            }
        ]
        commentary = self.catalog.commentary("Rashi", parashah.book)
        if commentary is not None:
            candidates.append(
                {
                    "en": f"What does Rashi say on {opening}?",
                    "he": f'מה אומר רש"י על {self._hebrew_ref(opening)}?',
                }
            )
        topical = self._topical(middle)
        if topical is not None:
            candidates.append(topical)
        candidates.append(
            {
                "en": f"What does {middle} say?",
                "he": f"מה כתוב ב{self._hebrew_ref(middle)}?",
            }
        )
        chosen = [q for q in candidates if self._answerable(q["en"], portion)]
        return chosen[:3]

    def _topical(self, verse: str) -> dict[str, str] | None:
        """Build a "where does the Torah say …" question from the verse's words."""
        try:
            records = self.retriever.lookup(self.catalog.parse(verse))
        except RefError:
            return None
        if not records or not records[0].en or not records[0].he:
            return None
        english = " ".join(records[0].en.split()[:TOPIC_WORDS]).rstrip(",;:.")
        hebrew = " ".join(strip_marks(records[0].he).split()[:TOPIC_WORDS])
        return {
            "en": f"Where does the Torah say \u201c{english}\u201d?",
            "he": f"איפה כתוב \u201c{hebrew}\u201d?",
        }

    def _answerable(self, question: str, portion: Ref) -> bool:
        """Check that retrieval finds a passage for ``question`` inside the portion."""
        try:
            result = self.retriever.retrieve(question)
        except Exception:
            logger.exception("Checking the suggested question %r failed", question)
            return False
        if result.mode in ("abstain", "invalid_ref"):
            return False
        for passage in result.passages[:5]:
            try:
                ref = self.catalog.parse(passage.record.ref, validate=False)
            except RefError:
                continue
            base = self.catalog.books[ref.book].base_title or ref.book
            if base == portion.book and _within(ref, portion):
                return True
        return False

    def _hebrew_ref(self, ref: str) -> str:
        try:
            parsed = self.catalog.parse(ref, validate=False)
        except RefError:
            return ref
        return parsed.hebrew(self.catalog.books[parsed.book].he_title)


def _first_verse(aliyah: str) -> str:
    return aliyah.split("-")[0]


def _within(ref: Ref, portion: Ref) -> bool:
    """Check whether the chapter and verse of ``ref`` lie inside ``portion``."""
    point = ref.start[:2]
    return portion.start[:2] <= point <= portion.last[:2]
