"""The command line's PostgreSQL retrieval options on a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from library_data import needs_hunspell
from servers import fresh_postgres_database
from torah_study.cli import main
from torah_study.config import libpq_url


@needs_hunspell
def test_setup_search_reports_dictionary(
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = libpq_url(fresh_postgres_database(postgres_url))
    monkeypatch.setenv("TORAH_STUDY_RETRIEVAL_DATABASE_URL", url)
    assert main(["--backend", "postgres", "db", "setup-search"]) == 0
    assert "uses the Hebrew dictionary" in capsys.readouterr().out


def test_setup_search_fails_without_hebrew_dictionary(
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without hunspell-he the configuration is made, but the command fails."""
    from torah_study.index import pg_search

    url = libpq_url(fresh_postgres_database(postgres_url))
    monkeypatch.setenv("TORAH_STUDY_RETRIEVAL_DATABASE_URL", url)
    # As on a machine without the package: nothing to copy, no dictionary.
    monkeypatch.setattr(
        pg_search,
        "install_dictionary_files",
        lambda sharedir: pg_search.SearchSetup(False, True),
    )
    monkeypatch.setattr(pg_search, "create_configuration", lambda c, upgrade: False)
    assert main(["--backend", "postgres", "db", "setup-search"]) == 1
    assert "install the Debian package hunspell-he" in capsys.readouterr().err


def test_setup_search_needs_postgres(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("TORAH_STUDY_RETRIEVAL_DATABASE_URL", raising=False)
    monkeypatch.setenv("TORAH_STUDY_DATABASE_URL", f"sqlite:///{tmp_path}/a.db")
    assert main(["db", "setup-search"]) == 1
    assert "needs a PostgreSQL URL" in capsys.readouterr().err


def test_search_without_database_fails_cleanly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "catalog.json").write_text("[]", encoding="utf-8")
    monkeypatch.setenv("TORAH_STUDY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TORAH_STUDY_RETRIEVAL_DATABASE_URL", raising=False)
    monkeypatch.delenv("TORAH_STUDY_DATABASE_URL", raising=False)
    assert main(["--backend", "postgres", "search", "love"]) == 1
    assert "TORAH_STUDY_RETRIEVAL_DATABASE_URL" in capsys.readouterr().err
