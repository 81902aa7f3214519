"""What the browser tests share: the site under test and screenshots."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from openai_stub import StubServer

from torah_study.config import Settings

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(
    os.environ.get("TORAH_STUDY_SCREENSHOTS", REPO / "build" / "screenshots")
)


@dataclass
class Site:
    url: str
    stub: StubServer
    settings: Settings

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


def screenshot(page: Any, name: str) -> None:
    """Save a screenshot of the page's current state for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
