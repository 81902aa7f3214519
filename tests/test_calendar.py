"""The weekly Torah portion: schedule, refs from the schemas, and suggestions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from servers import accounts_settings, live_server, register
from torah_study.api.app import create_app
from torah_study.calendar import PortionCalendar, next_shabbat
from torah_study.config import Settings
from torah_study.library.catalog import Catalog
from torah_study.library.parashot import load_parashot, read_parashot
from torah_study.service import Services

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def calendar(services: Services, library_settings: Settings) -> PortionCalendar:
    return PortionCalendar(
        load_parashot(library_settings.parashot_path),
        services.catalog,
        services.retriever,
    )


def test_next_shabbat() -> None:
    assert next_shabbat(date(2025, 10, 16)) == date(2025, 10, 18)
    assert next_shabbat(date(2025, 10, 18)) == date(2025, 10, 18)
    assert next_shabbat(date(2025, 10, 19)) == date(2025, 10, 25)


def test_schemas_give_all_54_portions(export_dir: Path, catalog: Catalog) -> None:
    parashot = read_parashot(export_dir)
    assert len(parashot) == 54
    assert [p.name for p in parashot[:2]] == ["Bereshit", "Noach"]
    assert parashot[0].he_name == "בראשית"
    assert parashot[0].ref == "Genesis 1:1-6:8"
    assert parashot[-1].ref == "Deuteronomy 33:1-34:12"
    for parashah in parashot:
        assert catalog.parse(parashah.ref).book == parashah.book


def test_bereshit_after_simchat_torah(calendar: PortionCalendar) -> None:
    week = calendar.week(date(2025, 10, 16), diaspora=True)
    assert week["shabbat"] == "2025-10-18"
    assert week["holiday"] is None
    assert week["name"] == "Bereshit"
    assert week["hebrew_date"] == "26 Tishrei 5786"
    (portion,) = week["parashot"]
    assert portion["ref"] == "Genesis 1:1-6:8"
    assert portion["he_ref"] == "בראשית א:א-ו:ח"
    assert len(portion["aliyot"]) == 7


def test_suggested_questions_are_answered_from_the_portion(
    calendar: PortionCalendar, services: Services
) -> None:
    week = calendar.week(date(2026, 12, 4), diaspora=True)
    assert week["name"] == "Vayeshev"
    questions = week["questions"]
    assert len(questions) == 3
    for question in questions:
        assert question["en"] and question["he"]
        result = services.retriever.retrieve(question["en"])
        refs = [services.catalog.parse(p.record.ref) for p in result.passages[:5]]
        inside = [
            ref
            for ref in refs
            if ref.book in ("Genesis", "Rashi on Genesis") and 37 <= ref.start[0] <= 40
        ]
        assert inside, (question, refs)


def test_israel_and_diaspora_differ_in_summer_2022(calendar: PortionCalendar) -> None:
    diaspora = calendar.week(date(2022, 7, 25), diaspora=True)
    israel = calendar.week(date(2022, 7, 25), diaspora=False)
    assert diaspora["name"] == "Matot-Masei"
    assert [p["ref"] for p in diaspora["parashot"]] == [
        "Numbers 30:2-32:42",
        "Numbers 33:1-36:13",
    ]
    assert israel["name"] == "Masei"


def test_festival_shabbat_points_to_the_next_portion(calendar: PortionCalendar) -> None:
    week = calendar.week(date(2025, 4, 17), diaspora=True)
    assert week["holiday"] == "Pesach"
    assert week["shabbat"] == "2025-04-26"
    assert week["name"] == "Shmini"


@pytest.fixture(scope="module")
def api(
    services: Services,
    library_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[httpx.Client]:
    database = tmp_path_factory.mktemp("calendar") / "accounts.db"
    settings = accounts_settings(library_settings, f"sqlite:///{database}")
    app = create_app(settings, services=services)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


@pytest.mark.slow
def test_api_matches_the_calendar(api: httpx.Client, calendar: PortionCalendar) -> None:
    params = {"date": "2025-10-16", "diaspora": "true"}
    assert api.get("/calendar/parashah", params=params).status_code == 401
    headers = register(api)["headers"]
    response = api.get("/calendar/parashah", params=params, headers=headers)
    assert response.status_code == 200
    assert response.json() == calendar.week(date(2025, 10, 16), diaspora=True)
    bad = api.get("/calendar/parashah", params={"date": "2025-13-40"}, headers=headers)
    assert bad.status_code == 422
