"""Settings reach every process, and invalid ones fail with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn

from servers import fresh_postgres_database
from torah_study.cli import main
from torah_study.config import Settings, libpq_url
from torah_study.index.postgres import PostgresStore

# Settings the serve command writes into the environment for its workers;
# monkeypatch restores them after each test.
WORKER_ENV = (
    "TORAH_STUDY_DATA_DIR",
    "TORAH_STUDY_RETRIEVAL_BACKEND",
    "TORAH_STUDY_MIGRATE_ON_START",
)


@pytest.fixture()
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record uvicorn.run calls instead of serving."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append(k))
    return calls


def test_workers_get_the_command_line_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[dict[str, Any]]
) -> None:
    for name in WORKER_ENV:
        monkeypatch.delenv(name, raising=False)
    # The environment says postgres; the command line chooses lance, and the
    # workers, which read only the environment, must serve lance too.
    monkeypatch.setenv("TORAH_STUDY_RETRIEVAL_BACKEND", "postgres")
    (tmp_path / "catalog.json").write_text("[]", encoding="utf-8")
    argv = [
        "--backend",
        "lance",
        "--data-dir",
        str(tmp_path),
        "serve",
        "--workers",
        "2",
    ]
    assert main(argv) == 0
    assert started and started[0]["workers"] == 2
    in_worker = Settings(_env_file=None)  # type: ignore[call-arg]
    assert in_worker.retrieval_backend == "lance"
    assert in_worker.data_dir == tmp_path


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TORAH_STUDY_DENSE_SCOPE", "Tanakh", ("Tanakh",)),
        ("TORAH_STUDY_BOOKS", "Genesis", ("Genesis",)),
        ("TORAH_STUDY_BOOKS", '["Genesis", "Exodus"]', ("Genesis", "Exodus")),
        ("TORAH_STUDY_DUMP_PATHS", "/data/a.jsonl", (Path("/data/a.jsonl"),)),
    ],
)
def test_list_setting_takes_one_plain_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: tuple[Any, ...]
) -> None:
    monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    field = name.removeprefix("TORAH_STUDY_").lower()
    assert getattr(settings, field) == expected


def test_broken_list_setting_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TORAH_STUDY_BOOKS", '["Genesis"')
    assert main(["--data-dir", str(tmp_path), "search", "light"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: invalid setting: books:")
    assert len(err.strip().splitlines()) == 1


def test_serve_reports_a_dimension_mismatch_in_one_line(
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    started: list[dict[str, Any]],
) -> None:
    url = libpq_url(fresh_postgres_database(postgres_url))
    PostgresStore(url, dimension=384).close()
    monkeypatch.setenv("TORAH_STUDY_RETRIEVAL_DATABASE_URL", url)
    monkeypatch.setenv("TORAH_STUDY_EMBEDDING_PROVIDER", "openai")
    monkeypatch.setenv("TORAH_STUDY_OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("TORAH_STUDY_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("TORAH_STUDY_EMBEDDING_DIMENSION", "768")
    (tmp_path / "catalog.json").write_text("[]", encoding="utf-8")
    assert main(["--backend", "postgres", "--data-dir", str(tmp_path), "serve"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "768" in err
    assert len(err.strip().splitlines()) == 1
    assert not started
