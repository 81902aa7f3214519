"""`torah-study db backup` and `db restore` of the SQLite accounts database."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from torah_study.cli import main
from torah_study.db.backup import BackupError, check
from torah_study.db.engine import create_db_engine, session_factory
from torah_study.db.migrate import head_revision, upgrade
from torah_study.db.models import User


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("TORAH_STUDY_DATABASE_URL", raising=False)
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def database_of(data_dir: Path) -> Path:
    return data_dir / "torah-study.db"


def migrated(data_dir: Path) -> Engine:
    engine = create_db_engine(f"sqlite:///{database_of(data_dir)}")
    upgrade(engine)
    return engine


def add_users(engine: Engine, *emails: str) -> None:
    with session_factory(engine).begin() as db:
        for email in emails:
            db.add(User(email=email, email_key=email.lower(), password_hash="x"))


def emails_in(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT email FROM users").fetchall()
    return {str(row[0]) for row in rows}


def db(data_dir: Path, *arguments: str) -> int:
    return main(["--data-dir", str(data_dir), "db", *arguments])


def test_backup_while_another_connection_writes(data_dir: Path) -> None:
    engine = migrated(data_dir)
    add_users(engine, *(f"reader{n}@example.org" for n in range(3000)))
    errors: list[BaseException] = []
    written: list[int] = []
    stop = threading.Event()

    def write() -> None:
        writer = create_db_engine(f"sqlite:///{database_of(data_dir)}")
        try:
            number = 0
            while not stop.is_set():
                add_users(writer, f"writer{number}@example.org")
                number += 1
                written.append(number)
        except BaseException as error:
            errors.append(error)
        finally:
            writer.dispose()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        codes = []
        for number in range(3):
            target = data_dir.parent / f"backup-{number}.db"
            codes.append(db(data_dir, "backup", str(target)))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert errors == []
    assert codes == [0, 0, 0]
    # The writer kept committing while the backups ran.
    assert len(written) > 0
    for number in range(3):
        target = data_dir.parent / f"backup-{number}.db"
        assert check(target) == head_revision()
        emails = emails_in(target)
        assert {f"reader{n}@example.org" for n in range(3000)} <= emails
        writer_rows = {e for e in emails if e.startswith("writer")}
        # A snapshot contains a prefix of the writer's commits, never a gap.
        assert writer_rows == {
            f"writer{n}@example.org" for n in range(len(writer_rows))
        }
        assert not Path(f"{target}-wal").exists()
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(User)).scalar()
    assert total == 3000 + len(written)
    engine.dispose()


def test_backup_rejects_existing_file(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = migrated(data_dir)
    add_users(engine, "ruth@example.org")
    target = data_dir.parent / "backup.db"
    target.write_bytes(b"keep me")
    assert db(data_dir, "backup", str(target)) == 1
    assert "--force" in capsys.readouterr().err
    assert target.read_bytes() == b"keep me"
    assert db(data_dir, "backup", str(target), "--force") == 0
    assert emails_in(target) == {"ruth@example.org"}
    assert target.stat().st_mode & 0o077 == 0
    engine.dispose()


def test_backup_without_database(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = data_dir.parent / "backup.db"
    assert db(data_dir, "backup", str(target)) == 1
    assert "no database at" in capsys.readouterr().err
    assert not target.exists()


def test_backup_and_restore_need_file(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert db(data_dir, "backup") == 1
    assert "needs a file" in capsys.readouterr().err
    assert db(data_dir, "restore") == 1
    assert "needs a file" in capsys.readouterr().err


def test_restore_round_trip(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = migrated(data_dir)
    add_users(engine, "ruth@example.org")
    target = data_dir.parent / "backup.db"
    assert db(data_dir, "backup", str(target)) == 0
    add_users(engine, "naomi@example.org")
    engine.dispose()
    capsys.readouterr()

    assert db(data_dir, "restore", str(target)) == 0
    output = capsys.readouterr().out
    assert "Restored" in output
    assert emails_in(database_of(data_dir)) == {"ruth@example.org"}
    kept = list(data_dir.glob("torah-study.db.*.bak"))
    assert len(kept) == 1
    assert str(kept[0]) in output
    assert emails_in(kept[0]) == {"ruth@example.org", "naomi@example.org"}
    assert check(database_of(data_dir)) == head_revision()
    # No temporary copy is left behind.
    assert not list(data_dir.glob(".*.tmp"))

    # The restored database serves the migrated engine as before.
    engine = create_db_engine(f"sqlite:///{database_of(data_dir)}")
    add_users(engine, "boaz@example.org")
    engine.dispose()
    assert emails_in(database_of(data_dir)) == {"ruth@example.org", "boaz@example.org"}


def test_restore_into_missing_database(data_dir: Path) -> None:
    engine = migrated(data_dir)
    add_users(engine, "ruth@example.org")
    engine.dispose()
    target = data_dir.parent / "backup.db"
    assert db(data_dir, "backup", str(target)) == 0
    fresh = data_dir.parent / "fresh"
    assert db(fresh, "restore", str(target)) == 0
    assert emails_in(database_of(fresh)) == {"ruth@example.org"}
    assert not list(fresh.glob("*.bak"))


def test_restore_rejects_open_database(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = migrated(data_dir)
    add_users(engine, "ruth@example.org")
    target = data_dir.parent / "backup.db"
    assert db(data_dir, "backup", str(target)) == 0
    add_users(engine, "naomi@example.org")
    # The engine's pooled connection keeps the write-ahead log open, as the
    # running service does.
    assert Path(f"{database_of(data_dir)}-wal").exists()

    assert db(data_dir, "restore", str(target)) == 1
    error = capsys.readouterr().err
    assert "-wal exists" in error
    assert "--force" in error
    assert emails_in(database_of(data_dir)) == {"ruth@example.org", "naomi@example.org"}
    assert not list(data_dir.glob("*.bak"))

    assert db(data_dir, "restore", str(target), "--force") == 0
    # The open connection reads the restored contents.
    with engine.connect() as connection:
        rows = connection.execute(select(User.email)).scalars().all()
    assert set(rows) == {"ruth@example.org"}
    engine.dispose()


def corrupt_page(path: Path) -> None:
    """Overwrite the middle of the file, past the header page, with garbage."""
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096
    middle = len(data) // 2
    data[middle : middle + 4096] = b"\xa5" * 4096
    path.write_bytes(bytes(data))


def not_this_project(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")


def foreign_revision(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: path.write_bytes(b"not a database at all" * 100), "not a"),
        (lambda path: path.write_bytes(b""), "not a Torah Study accounts database"),
        (corrupt_page, "SQLite"),
        (not_this_project, "not a Torah Study accounts database"),
        (foreign_revision, "does not know"),
    ],
    ids=["text", "empty", "corrupt-page", "other-schema", "unknown-revision"],
)
def test_restore_rejects_bad_file(
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], object],
    message: str,
) -> None:
    engine = migrated(data_dir)
    add_users(engine, *(f"user{n}@example.org" for n in range(300)))
    engine.dispose()
    before = database_of(data_dir).read_bytes()
    bad = data_dir.parent / "bad.db"
    assert db(data_dir, "backup", str(bad)) == 0
    damage(bad)
    capsys.readouterr()

    assert db(data_dir, "restore", str(bad)) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ")
    assert message in error
    assert str(bad) in error
    assert ".tmp" not in error
    assert database_of(data_dir).read_bytes() == before
    assert not list(data_dir.glob("*.bak"))
    assert not list(data_dir.glob(".*.tmp"))


def test_restore_missing_file(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    migrated(data_dir).dispose()
    assert db(data_dir, "restore", str(data_dir / "nowhere.db")) == 1
    assert "backup file not found" in capsys.readouterr().err


def test_postgres_points_to_pg_dump(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "TORAH_STUDY_DATABASE_URL", "postgresql://torah:hunter2@127.0.0.1:1/torah"
    )
    for action in ("backup", "restore"):
        assert db(data_dir, action, str(data_dir / "backup.dump")) == 1
        error = capsys.readouterr().err
        assert "pg_dump" in error
        assert "pg_restore" in error
        assert "hunter2" not in error
    assert not (data_dir / "backup.dump").exists()


def test_check_rejects_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("shalom\n" * 200, encoding="utf-8")
    with pytest.raises(BackupError, match="not a readable SQLite database"):
        check(path)
