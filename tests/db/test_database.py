"""The accounts database: migrations, connection settings and concurrent writes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from torah_study.config import Settings
from torah_study.conversations.store import ConversationStore
from torah_study.db.engine import create_db_engine, normalise_url, session_factory
from torah_study.db.migrate import current_revision, downgrade, head_revision, upgrade
from torah_study.db.models import Message, User, UTCDateTime

TABLES = {
    "users",
    "auth_sessions",
    "refresh_tokens",
    "email_codes",
    "rate_events",
    "conversations",
    "messages",
    "message_sources",
    "feedback",
}


def test_upgrade_and_downgrade(empty_database_url: str) -> None:
    engine = create_db_engine(empty_database_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) >= TABLES
        upgrade(engine)  # running again changes nothing
        downgrade(engine, "base")
        assert current_revision(engine) is None
        assert not TABLES & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_emails_are_unique_ignoring_case(database_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    engine = create_db_engine(database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    try:
        with sessions.begin() as db:
            db.add(
                User(
                    email="Ruth@example.org",
                    email_key="ruth@example.org",
                    password_hash="x",
                )
            )
        with pytest.raises(IntegrityError), sessions.begin() as db:
            db.add(
                User(
                    email="RUTH@example.org",
                    email_key="ruth@example.org",
                    password_hash="x",
                )
            )
    finally:
        engine.dispose()


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'nested' / 'accounts.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    finally:
        engine.dispose()
    assert (tmp_path / "nested" / "accounts.db").exists()


def test_plain_postgresql_urls_use_psycopg() -> None:
    assert normalise_url("postgresql://u:p@db/torah").startswith(
        "postgresql+psycopg://"
    )
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_default_database_is_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert settings.database == f"sqlite:///{tmp_path / 'torah-study.db'}"


def test_timestamps_come_back_in_utc(database_url: str) -> None:
    engine = create_db_engine(database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    try:
        with sessions.begin() as db:
            db.add(
                User(
                    email="tz@example.org",
                    email_key="tz@example.org",
                    password_hash="x",
                )
            )
        with sessions() as db:
            user = db.scalar(select(User).where(User.email_key == "tz@example.org"))
            assert user is not None
            assert user.created_at.tzinfo is not None
            assert user.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
            assert abs((datetime.now(UTC) - user.created_at).total_seconds()) < 120
        with pytest.raises(ValueError, match="naive"):
            UTCDateTime().process_bind_param(datetime(2026, 1, 1), engine.dialect)
    finally:
        engine.dispose()


def test_concurrent_turns_are_all_saved(database_url: str) -> None:
    """Many threads writing to one conversation: no lost or doubled messages,
    and no "database is locked" on SQLite."""
    engine = create_db_engine(database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    store = ConversationStore(sessions, lambda content: content[:20])
    try:
        with sessions.begin() as db:
            db.add(
                User(
                    id="c" * 32,
                    email="c@example.org",
                    email_key="c@example.org",
                    password_hash="x",
                )
            )
        conversation = store.create("c" * 32)
        errors: list[BaseException] = []

        def worker(number: int) -> None:
            try:
                for turn in range(5):
                    started = store.start_turn(
                        "c" * 32, conversation.id, f"question {number}-{turn}", "q"
                    )
                    store.save_partial(started.assistant_message.id, "partial")
                    store.finish(
                        started.assistant_message.id, status="complete", content="done"
                    )
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with sessions() as db:
            rows = db.execute(
                select(Message.position, Message.role, Message.content, Message.status)
                .where(Message.conversation_id == conversation.id)
                .order_by(Message.position)
            ).all()
        assert [row.position for row in rows] == list(range(80))
        questions = [row.content for row in rows if row.role == "user"]
        assert len(set(questions)) == 40
        assert all(row.status == "complete" for row in rows)
        # Each answer directly follows its question.
        assert [row.role for row in rows] == ["user", "assistant"] * 40
    finally:
        engine.dispose()


def test_processes_migrating_together(empty_database_url: str) -> None:
    # Three service processes starting at once, as with several API workers.
    env = {**os.environ, "TORAH_STUDY_DATABASE_URL": empty_database_url}
    command = [sys.executable, "-m", "torah_study.cli", "db", "upgrade"]
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert all(b"(newest)" in out for out, _ in outputs)
    engine = create_db_engine(empty_database_url)
    try:
        assert current_revision(engine) == head_revision()
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                locks = connection.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
                ).scalar()
            assert locks == 0
    finally:
        engine.dispose()


def test_models_match_the_migrations(empty_database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from torah_study.db.models import Base

    engine = create_db_engine(empty_database_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_downgrade_needs_confirmation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    env = {**os.environ, "TORAH_STUDY_DATABASE_URL": url}
    base = [sys.executable, "-m", "torah_study.cli", "db"]
    run = subprocess.run
    assert run([*base, "upgrade"], env=env, capture_output=True).returncode == 0
    refused = run([*base, "downgrade", "base"], env=env, capture_output=True, text=True)
    assert refused.returncode == 1
    assert "--yes" in refused.stderr
    engine = create_db_engine(url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    done = run([*base, "downgrade", "base", "--yes"], env=env, capture_output=True)
    assert done.returncode == 0


def test_bad_database_url_is_a_clean_error() -> None:
    env = {**os.environ, "TORAH_STUDY_DATABASE_URL": "nosuchdb://x/y"}
    result = subprocess.run(
        [sys.executable, "-m", "torah_study.cli", "db", "current"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "DATABASE_URL" in result.stderr


def test_cli_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "accounts.db"
    env = {**os.environ, "TORAH_STUDY_DATABASE_URL": f"sqlite:///{path}"}
    for action in (["db", "current"], ["feedback", "export"]):
        result = subprocess.run(
            [sys.executable, "-m", "torah_study.cli", *action],
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1
        assert "no database at" in result.stderr
    assert not path.parent.exists()
