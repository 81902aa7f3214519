"""Fixtures for the browser tests: the built web app, the service and Chromium.

The tests drive Debian's Chromium (``/usr/bin/chromium``, or the path in
TORAH_STUDY_CHROMIUM) headless through Playwright. Without Chromium, the
Playwright package or a build in web/out they are skipped, unless
TORAH_STUDY_REQUIRE_BROWSER=1, which turns the skip into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from browsing import REPO, Site
from openai_stub import stub_server

from servers import Mailbox, accounts_settings, live_server
from torah_study.answer.llm.openai_compat import OpenAICompatibleModel
from torah_study.answer.pipeline import AnswerPipeline
from torah_study.api.app import create_app
from torah_study.config import Settings
from torah_study.service import Services, build_accounts

WEB_DIR = Path(os.environ.get("TORAH_STUDY_WEB_DIR", REPO / "web" / "out"))
CHROMIUM = Path(os.environ.get("TORAH_STUDY_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("TORAH_STUDY_REQUIRE_BROWSER") == "1"
# Flags for a headless Chromium on a machine without a display or network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def site(
    services: Services,
    library_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    """The service with the built web app, answering through the stub server."""
    if not (WEB_DIR / "index.html").is_file():
        _unavailable(f"no web app build in {WEB_DIR}; run scripts/build-web.sh")
    database = tmp_path_factory.mktemp("web") / "accounts.db"
    settings = accounts_settings(
        library_settings, f"sqlite:///{database}", web_dir=WEB_DIR
    )
    with stub_server() as stub:
        model = OpenAICompatibleModel(stub.base_url, "stub-model", api_key="unused")
        pipeline = AnswerPipeline(services.retriever, services.catalog, model)
        accounts = build_accounts(settings, services.catalog)
        app = create_app(
            settings, services=replace(services, pipeline=pipeline), accounts=accounts
        )
        with live_server(app) as url:
            yield Site(url, stub, settings)
        accounts.close()


@pytest.fixture(scope="session")
def mfa_site(
    services: Services,
    library_settings: Settings,
    smtp_server: tuple[int, Mailbox],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Site, Mailbox]]:
    """The service with email codes on, mailing them to a local SMTP server."""
    if not (WEB_DIR / "index.html").is_file():
        _unavailable(f"no web app build in {WEB_DIR}; run scripts/build-web.sh")
    port, mailbox = smtp_server
    database = tmp_path_factory.mktemp("web-mfa") / "accounts.db"
    settings = accounts_settings(
        library_settings,
        f"sqlite:///{database}",
        web_dir=WEB_DIR,
        mfa_enabled=True,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
    )
    with stub_server() as stub:
        accounts = build_accounts(settings, services.catalog)
        app = create_app(settings, services=services, accounts=accounts)
        with live_server(app) as url:
            yield Site(url, stub, settings), mailbox
        accounts.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    if not CHROMIUM.is_file():
        _unavailable(f"Chromium not found at {CHROMIUM}; install Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh browser profile on the site; page errors and dialogs fail the test."""
    yield from _open_page(browser, site.url, {"width": 1400, "height": 900})


@pytest.fixture()
def phone(browser: Any, site: Site) -> Iterator[Any]:
    """Like ``page``, on a phone-sized screen."""
    yield from _open_page(browser, site.url, {"width": 390, "height": 844})


@pytest.fixture()
def mfa_page(browser: Any, mfa_site: tuple[Site, Mailbox]) -> Iterator[Any]:
    yield from _open_page(browser, mfa_site[0].url, {"width": 1400, "height": 900})


def _open_page(browser: Any, url: str, viewport: dict[str, int]) -> Iterator[Any]:
    context = browser.new_context(
        base_url=url, viewport=viewport, locale="en-US", accept_downloads=True
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    opened.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    opened.problems = problems
    yield opened
    context.close()
    assert not problems, problems
