"""Back up and restore the SQLite accounts database with SQLite's backup API.

``Connection.backup`` copies the database page by page inside one read
transaction, so a backup is a consistent snapshot even while the service
writes: in WAL mode the writer does not wait for it. A restore copies a
checked backup into the live database the same way, in one write
transaction, so other connections see either the old or the new contents.
PostgreSQL databases are backed up with ``pg_dump`` and ``pg_restore``.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from torah_study.db.engine import SQLITE_BUSY_MS

VERSION_TABLE = "alembic_version"


class BackupError(Exception):
    """A backup or restore that cannot go ahead, with the reason as its message."""


@dataclass(frozen=True)
class Snapshot:
    """A checked copy of the accounts database."""

    path: Path
    revision: str
    size: int


@dataclass(frozen=True)
class Restored:
    """The outcome of a restore."""

    revision: str
    previous: Path | None  # the replaced database, kept as a .bak file


def sqlite_path(url: str) -> Path:
    """Return the file of a SQLite URL; raise BackupError for other databases."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise BackupError(f"invalid TORAH_STUDY_DATABASE_URL: {error}") from error
    if parsed.get_backend_name() != "sqlite":
        shown = parsed.render_as_string(hide_password=True)
        raise BackupError(
            f"{shown} is not SQLite: back up PostgreSQL with "
            "`pg_dump -Fc -f FILE DBNAME` and restore with "
            "`pg_restore --clean --if-exists -d DBNAME FILE` (docs/deploy.md)."
        )
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise BackupError(
            f"the SQLite database {database or '(empty)'!r} is not a file."
        )
    return Path(database).expanduser()


def backup(database: Path, target: Path, *, overwrite: bool = False) -> Snapshot:
    """Copy ``database`` into ``target`` and check the copy.

    The copy is written to a temporary file beside ``target`` and renamed
    over it at the end, so ``target`` never holds a partial backup. An
    existing ``target`` is replaced only with ``overwrite``.
    """
    if not database.is_file():
        raise BackupError(f"no database at {database}: nothing to back up.")
    if target.exists() and target.resolve() == database.resolve():
        raise BackupError(f"{target} is the database itself: choose another file.")
    if target.exists() and not overwrite:
        raise BackupError(f"{target} exists: choose a new file, or add --force.")
    if not target.parent.is_dir():
        raise BackupError(f"folder not found: {target.parent}")
    with _temporary_file(target.parent, target.name) as partial:
        try:
            with closing(_connect(database)) as source:
                _copy(source, partial)
        except sqlite3.Error as error:
            raise BackupError(f"backing up {database} failed: {error}") from error
        revision = check(partial)
        os.replace(partial, target)
    return Snapshot(target, revision, target.stat().st_size)


def restore(database: Path, source: Path, *, force: bool = False) -> Restored:
    """Replace the contents of ``database`` with the checked backup ``source``.

    The backup is first copied beside the database and checked there, so a
    file that fails the checks changes nothing. The current database is then
    copied to ``<name>.<UTC time>.bak`` before it is overwritten. A
    write-ahead log beside the database means a connection, such as the
    service's, may have it open: the restore is then rejected unless
    ``force``.
    """
    if not source.is_file():
        raise BackupError(f"backup file not found: {source}")
    if database.exists() and source.resolve() == database.resolve():
        raise BackupError(f"{source} is the database itself: name a backup file.")
    database.parent.mkdir(parents=True, exist_ok=True)
    with _temporary_file(database.parent, database.name) as checked:
        try:
            with closing(_open_backup(source)) as original:
                _copy(original, checked)
        except sqlite3.Error as error:
            raise BackupError(
                f"{source} is not a readable SQLite database: {error}"
            ) from error
        revision = check(checked, label=source)
        wal = database.with_name(database.name + "-wal")
        if wal.exists() and not force:
            raise BackupError(
                f"{wal} exists, so the service (or another program) may have the "
                "database open: stop it and run this again, or add --force to "
                "restore under open connections."
            )
        previous = None
        if database.exists():
            previous = _free_name(database, datetime.now(UTC))
            try:
                with closing(_connect(database)) as live:
                    _copy(live, previous)
            except sqlite3.Error as error:
                raise BackupError(
                    f"copying the current database {database} to {previous} "
                    f"failed, so nothing was restored: {error}"
                ) from error
            os.chmod(previous, 0o600)
        try:
            with (
                closing(_connect(checked)) as copy,
                closing(_connect(database)) as live,
            ):
                copy.backup(live)
        except sqlite3.Error as error:
            kept = f"; the previous contents are in {previous}" if previous else ""
            raise BackupError(
                f"restoring into {database} failed: {error}{kept}"
            ) from error
        os.chmod(database, 0o600)
    check(database)
    return Restored(revision, previous)


def check(path: Path, label: Path | None = None) -> str:
    """Check that ``path`` is an intact accounts database; return its revision.

    Raises BackupError when the file is no SQLite database, fails
    ``PRAGMA integrity_check``, lacks a table of the accounts schema, or has
    a revision that this version's migrations do not know. Messages name
    ``label`` (the file the user gave) in place of ``path`` when it is set.
    """
    shown = label or path
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    from torah_study.db.migrate import alembic_config
    from torah_study.db.models import Base

    try:
        with closing(_connect(path)) as connection:
            problems = [
                str(row[0])
                for row in connection.execute("PRAGMA integrity_check").fetchall()
            ]
            tables = {
                str(row[0])
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
            revisions = []
            if VERSION_TABLE in tables:
                revisions = [
                    str(row[0])
                    for row in connection.execute(
                        f"SELECT version_num FROM {VERSION_TABLE}"
                    )
                ]
    except sqlite3.DatabaseError as error:
        raise BackupError(
            f"{shown} is not a readable SQLite database: {error}"
        ) from error
    if problems != ["ok"]:
        raise BackupError(
            f"{shown} failed the SQLite integrity check: {'; '.join(problems[:5])}"
        )
    if VERSION_TABLE not in tables or len(revisions) != 1:
        raise BackupError(
            f"{shown} is not a Torah Study accounts database: it has no migration "
            f"revision ({VERSION_TABLE} table)."
        )
    # NOTE: every table comes from the first migration. A migration that adds
    # a table must make this set depend on the backup's revision.
    missing = sorted(set(Base.metadata.tables) - tables)
    if missing:
        raise BackupError(
            f"{shown} is not a Torah Study accounts database: tables "
            f"{', '.join(missing)} are missing."
        )
    revision = revisions[0]
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        raise BackupError(
            f"{shown} is at revision {revision}, which this version of Torah Study "
            "does not know: restore it with the version that wrote it."
        )
    return revision


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=SQLITE_BUSY_MS / 1000)


def _open_backup(path: Path) -> sqlite3.Connection:
    """Open a backup file read-only, so a bad file is never changed."""
    return sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=SQLITE_BUSY_MS / 1000
    )


def _copy(source: sqlite3.Connection, target: Path) -> None:
    """Copy ``source`` into the file ``target`` as one self-contained file."""
    with closing(_connect(target)) as destination:
        source.backup(destination)
        # A copy of a WAL database is in WAL mode too; a backup file must
        # not depend on -wal and -shm files beside it.
        destination.execute("PRAGMA journal_mode=DELETE")


def _free_name(database: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    candidate = database.with_name(f"{database.name}.{stamp}.bak")
    number = 1
    while candidate.exists():
        candidate = database.with_name(f"{database.name}.{stamp}-{number}.bak")
        number += 1
    return candidate


@contextmanager
def _temporary_file(folder: Path, name: str) -> Iterator[Path]:
    """Yield an empty, owner-only file in ``folder``; remove it afterwards."""
    descriptor, path = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(descriptor)
    try:
        yield Path(path)
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
