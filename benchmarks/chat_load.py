"""Load the conversation API with concurrent users, then audit the saved messages.

Usage:
    python benchmarks/chat_load.py [--data-dir DIR] [--users 50] [--messages 10] \\
        [--duration SECONDS] [--databases sqlite,postgresql] [--output chat.json] \\
        [--log-dir DIR]

For each database, in one run, the script:

1. creates an empty accounts database: a SQLite file in a temporary folder, or a
   PostgreSQL server started with ``scripts/postgres.py`` in a temporary folder
   and stopped at the end;
2. starts the real service (``uvicorn --factory torah_study.api.app:create_app``)
   in a child process on 127.0.0.1 with sources-only answers, so every answer
   is deterministic and no answer model is loaded;
3. registers ``--users`` accounts and sends one ``/search`` request as a
   warm-up. This is not timed, because argon2 hashing makes each registration
   cost about 0.1 to 0.2 s on a 2-core machine;
4. starts the clock, and every user concurrently creates a conversation and
   sends ``--messages`` questions one after the other to
   ``POST /conversations/{id}/messages?stream=true``, reading the server-sent
   events to the end. With ``--duration`` each user instead keeps sending
   until that many seconds have passed, and finishes the question it is
   reading. The clock stops when the last user is done, and the throughput
   counts the answers that ended with a ``done`` event;
5. stops the service and reads the database directly with SQLAlchemy to check
   that every conversation holds exactly the turns that were sent.

Per message the client records the time to the ``turn`` event (the question
and an empty answer row are saved), to the first ``token`` event, and to the
``done`` event (total latency). With sources-only answers every token comes
at once after retrieval, so the first token and the total are close.

The child process gets ``TORAH_STUDY_*`` settings only from this script, and it
runs in the temporary folder so that no ``.env`` file is read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench_common import EXTRA_QUERIES, latency_summary, machine_info, write_json
from sqlalchemy import select
from sqlalchemy.orm import Session

from torah_study.db.engine import create_db_engine
from torah_study.db.models import Conversation, Message

DATA_DIR_ENV = "TORAH_STUDY_DATA_DIR"
# The service's log: every logger at INFO and above with its level and time,
# so errors of the service's own modules show up next to uvicorn's lines.
SERVICE_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
}
DATABASES = ("sqlite", "postgresql")
POSTGRES_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres.py"
PASSWORD = "a long load-test password"
# At most this many registrations run at once, because argon2 hashing keeps a
# core busy for each one.
REGISTER_CONCURRENCY = 4
SERVER_START_SECONDS = 180.0
SERVER_STOP_SECONDS = 30.0
# Audit failures printed to stderr and kept in the report, per database.
MAX_PROBLEMS = 20

# Questions about texts in the default dense scope, followed by the opening
# words of verses and mishnayot from bench_common. The source of each question
# is given for the reader.
QUESTIONS = (
    "Where is the commandment to love your neighbor as yourself?",  # Leviticus 19:18
    "With what may one light the Shabbat lamp?",  # Mishnah Shabbat 2:1
    "Genesis 1:1",
    "Where does the Torah command honoring your father and mother?",  # Exodus 20:12
    "From when may the Shema be recited in the evening?",  # Mishnah Berakhot 1:1
    *EXTRA_QUERIES,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data_dir = os.environ.get(DATA_DIR_ENV)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(default_data_dir) if default_data_dir else None,
        help=f"data folder of an ingested library (default: ${DATA_DIR_ENV})",
    )
    parser.add_argument(
        "--users", type=int, default=50, help="concurrent users (default 50)"
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=10,
        help="questions each user sends one after the other (default 10)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        help="send questions for this many seconds instead of --messages each",
    )
    parser.add_argument(
        "--databases",
        default=",".join(DATABASES),
        help="comma-separated databases to run, in order (default sqlite,postgresql)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds a client waits for one response before it fails (default 600)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="keep the service's log for each database here (default: discarded)",
    )
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    args = parser.parse_args()
    args.databases = [name.strip() for name in args.databases.split(",") if name]
    return args


def check_args(args: argparse.Namespace) -> None:
    if args.data_dir is None:
        sys.exit(f"error: give --data-dir or set {DATA_DIR_ENV}.")
    args.data_dir = args.data_dir.resolve()
    if not (args.data_dir / "catalog.json").is_file():
        sys.exit(
            f"error: {args.data_dir} has no catalog.json: "
            "run `torah-study ingest` into it first."
        )
    if args.users < 1 or args.messages < 1:
        sys.exit("error: --users and --messages must be at least 1.")
    if args.duration is not None and args.duration <= 0:
        sys.exit(f"error: --duration must be positive, got {args.duration}.")
    unknown = [name for name in args.databases if name not in DATABASES]
    if unknown or not args.databases:
        sys.exit(
            f"error: invalid --databases {','.join(args.databases)!r}: "
            f"choose from {', '.join(DATABASES)}."
        )


# Databases and the service.


@contextmanager
def sqlite_database(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'accounts.db'}"


@contextmanager
def postgresql_database(folder: Path) -> Iterator[str]:
    """Start an embedded PostgreSQL server in ``folder``, yield its URL, stop it."""
    server_dir = folder / "postgresql"
    started = subprocess.run(
        [sys.executable, str(POSTGRES_SCRIPT), "start", str(server_dir)],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        raise RuntimeError(
            f"starting PostgreSQL failed (exit {started.returncode}): "
            f"{started.stderr.strip()}"
        )
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        stopped = subprocess.run(
            [sys.executable, str(POSTGRES_SCRIPT), "stop", str(server_dir)],
            capture_output=True,
            text=True,
        )
        if stopped.returncode != 0:
            print(
                f"warning: stopping PostgreSQL in {server_dir} failed: "
                f"{stopped.stderr.strip()}",
                file=sys.stderr,
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_environment(
    data_dir: Path, database_url: str, users: int
) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TORAH_STUDY_")
    }
    environment.update(
        {
            "TORAH_STUDY_DATA_DIR": str(data_dir),
            "TORAH_STUDY_LLM_PROVIDER": "sources",
            "TORAH_STUDY_DATABASE_URL": database_url,
            "TORAH_STUDY_JWT_SECRET": secrets.token_urlsafe(48),
            # Tokens outlive a slow run, so no request fails with 401 midway.
            "TORAH_STUDY_ACCESS_TOKEN_MINUTES": "1440",
            # Every load user registers from 127.0.0.1.
            "TORAH_STUDY_REGISTER_LIMIT_PER_ADDRESS": str(users),
            # The load is the point, so the per-account question limits are off.
            "TORAH_STUDY_QUESTIONS_PER_MINUTE": "0",
            "TORAH_STUDY_QUESTIONS_PER_DAY": "0",
        }
    )
    return environment


@contextmanager
def running_service(
    data_dir: Path,
    database_url: str,
    users: int,
    folder: Path,
    log_path: Path,
    settings: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run the service under uvicorn in a child process and yield its base URL.

    ``settings`` adds environment variables, such as ``TORAH_STUDY_WEB_DIR``.
    """
    port = free_port()
    log_config = folder / "logging.json"
    log_config.write_text(json.dumps(SERVICE_LOGGING), encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "torah_study.api.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-config",
        str(log_config),
        "--log-level",
        "info",
    ]
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env={
                **service_environment(data_dir, database_url, users),
                **(settings or {}),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_healthy(process, base_url, log_path)
            yield base_url
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=SERVER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                print(
                    f"warning: the service did not stop in {SERVER_STOP_SECONDS} s; "
                    "killing it",
                    file=sys.stderr,
                )
                process.kill()
                process.wait()


def wait_until_healthy(
    process: subprocess.Popen[bytes], base_url: str, log_path: Path
) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    with httpx.Client(base_url=base_url, timeout=5.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the service exited with code {process.returncode} at start; "
                    f"its log:\n{log_path.read_text(encoding='utf-8')}"
                )
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise RuntimeError(
        f"the service did not respond to /health within {SERVER_START_SECONDS} s"
    )


def scan_log(log_path: Path) -> dict[str, Any]:
    """Count tracebacks, server errors and lock timeouts in the service's log."""
    text = log_path.read_text(encoding="utf-8", errors="replace")
    statuses: Counter[str] = Counter()
    for line in text.splitlines():
        if '" ' in line and "HTTP/1.1" in line:
            statuses[line.rsplit('" ', 1)[1].split(" ", 1)[0]] += 1
    return {
        "tracebacks": text.count("Traceback (most recent call last)"),
        "error_lines": sum(1 for line in text.splitlines() if " ERROR " in line),
        "database_is_locked": text.count("database is locked"),
        "responses_by_status": dict(sorted(statuses.items())),
    }


# Clients.


@dataclass
class MessageResult:
    """The outcome of one question for one user, with times in seconds."""

    content: str
    status_code: int | None = None
    http_error: str | None = None
    sse_error: str | None = None
    turn_s: float | None = None
    first_token_s: float | None = None
    total_s: float | None = None
    assistant_message_id: str | None = None
    answer: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class LoadUser:
    number: int
    email: str
    headers: dict[str, str] = field(default_factory=dict)
    conversation_id: str | None = None
    conversation_error: str | None = None
    results: list[MessageResult] = field(default_factory=list)


async def read_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """Yield the (event, data) pairs of a server-sent event stream, without comments."""
    name = "message"
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
    if data:
        yield name, "\n".join(data)


async def register(
    client: httpx.AsyncClient, user: LoadUser, limit: asyncio.Semaphore
) -> None:
    async with limit:
        response = await client.post(
            "/auth/register", json={"email": user.email, "password": PASSWORD}
        )
    if response.status_code != 201:
        raise RuntimeError(
            f"registering {user.email} failed: HTTP {response.status_code} "
            f"{response.text[:300]}"
        )
    user.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}


async def send_message(
    client: httpx.AsyncClient, user: LoadUser, content: str
) -> MessageResult:
    result = MessageResult(content)
    started = time.perf_counter()
    try:
        async with client.stream(
            "POST",
            f"/conversations/{user.conversation_id}/messages",
            params={"stream": "true"},
            json={"content": content},
            headers=user.headers,
        ) as response:
            result.status_code = response.status_code
            if response.status_code != 200:
                body = (await response.aread()).decode("utf-8", "replace")
                result.http_error = f"HTTP {response.status_code}: {body[:300]}"
                return result
            async for name, data in read_events(response):
                now = time.perf_counter() - started
                if name == "turn":
                    result.turn_s = now
                    result.assistant_message_id = json.loads(data)[
                        "assistant_message_id"
                    ]
                elif name == "token" and result.first_token_s is None:
                    result.first_token_s = now
                elif name == "done":
                    result.total_s = now
                    done = json.loads(data)
                    result.answer = done["answer"]
                    result.timings = done.get("timings") or {}
                elif name == "error":
                    result.sse_error = data[:300]
    except httpx.HTTPError as error:
        result.http_error = f"{type(error).__name__}: {error}"
        return result
    if result.total_s is None and result.sse_error is None:
        result.sse_error = "the stream ended without a done or an error event"
    return result


async def run_user(
    client: httpx.AsyncClient, user: LoadUser, messages: int, deadline: float | None
) -> None:
    """Send ``messages`` questions, or questions until ``deadline`` when given."""
    try:
        response = await client.post("/conversations", headers=user.headers)
    except httpx.HTTPError as error:
        user.conversation_error = f"{type(error).__name__}: {error}"
        return
    if response.status_code != 201:
        user.conversation_error = f"HTTP {response.status_code}: {response.text[:300]}"
        return
    user.conversation_id = response.json()["id"]
    number = 0
    while number < messages if deadline is None else time.perf_counter() < deadline:
        content = QUESTIONS[(user.number + number) % len(QUESTIONS)]
        user.results.append(await send_message(client, user, content))
        number += 1


async def run_load(
    base_url: str,
    users: int,
    messages: int,
    duration: float | None,
    timeout: float,
    tag: str,
) -> tuple[list[LoadUser], float]:
    """Register the users, then time them all sending questions at once.

    Returns the users with their results and the wall time in seconds.
    """
    limits = httpx.Limits(max_connections=users + 10, max_keepalive_connections=users)
    async with httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=30.0),
        limits=limits,
        trust_env=False,
    ) as client:
        load_users = [
            LoadUser(number, f"load-{tag}-{number}@example.org")
            for number in range(users)
        ]
        started = time.perf_counter()
        limit = asyncio.Semaphore(REGISTER_CONCURRENCY)
        await asyncio.gather(*(register(client, u, limit) for u in load_users))
        print(
            f"  registered {users} users in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        warm = await client.get(
            "/search", params={"q": QUESTIONS[0]}, headers=load_users[0].headers
        )
        if warm.status_code != 200:
            raise RuntimeError(
                f"the warm-up search failed: HTTP {warm.status_code} {warm.text[:300]}"
            )

        started = time.perf_counter()
        deadline = None if duration is None else started + duration
        await asyncio.gather(
            *(run_user(client, u, messages, deadline) for u in load_users)
        )
        wall = time.perf_counter() - started
    return load_users, wall


# The audit.


@dataclass
class Audit:
    conversations_expected: int = 0
    messages_expected: int = 0
    messages_found: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong_role: int = 0
    user_content_mismatch: int = 0
    assistant_not_complete: int = 0
    assistant_empty: int = 0
    answer_mismatch: int = 0
    assistant_id_mismatch: int = 0
    unexpected_messages: int = 0
    assistant_statuses: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    server_latency_ms: list[float] = field(default_factory=list)
    server_first_token_ms: list[float] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)

    def failed_checks(self) -> int:
        """Return the number of failed checks other than lost and duplicated rows."""
        return (
            self.wrong_role
            + self.user_content_mismatch
            + self.assistant_not_complete
            + self.assistant_empty
            + self.answer_mismatch
            + self.assistant_id_mismatch
            + self.unexpected_messages
        )

    def report(self) -> dict[str, Any]:
        values = {
            name: getattr(self, name)
            for name in (
                "conversations_expected",
                "messages_expected",
                "messages_found",
                "lost",
                "duplicated",
                "wrong_role",
                "user_content_mismatch",
                "assistant_not_complete",
                "assistant_empty",
                "answer_mismatch",
                "assistant_id_mismatch",
                "unexpected_messages",
            )
        }
        values["assistant_statuses"] = dict(self.assistant_statuses)
        values["server_latency"] = latency_summary(
            [ms / 1000 for ms in self.server_latency_ms]
        )
        values["server_first_token"] = latency_summary(
            [ms / 1000 for ms in self.server_first_token_ms]
        )
        values["problems"] = self.problems
        return values


def audit_database(database_url: str, users: list[LoadUser], messages: int) -> Audit:
    """Check every user's conversation in the database against what was sent.

    Every user is expected to hold one conversation with two rows per question
    it sent (``messages`` for a user whose conversation was not created):
    the questions in the order sent at even positions, and complete, non-empty
    answers at odd positions. A request that failed still counts as expected,
    so its missing rows show up as lost.
    """
    audit = Audit()
    engine = create_db_engine(database_url)
    try:
        with Session(engine) as db:
            rows: dict[str, list[Message]] = defaultdict(list)
            for message in db.scalars(
                select(Message).order_by(Message.conversation_id, Message.position)
            ):
                rows[message.conversation_id].append(message)
            owners = {
                conversation.id: conversation.user_id
                for conversation in db.scalars(select(Conversation))
            }
    finally:
        engine.dispose()

    expected_ids = {u.conversation_id for u in users if u.conversation_id}
    for conversation_id, found in rows.items():
        if conversation_id not in expected_ids:
            audit.unexpected_messages += len(found)
            audit.problem(
                f"conversation {conversation_id} (owner {owners.get(conversation_id)})"
                f" was not created by a load user but holds {len(found)} messages"
            )
    for user in users:
        audit.conversations_expected += 1
        sent = len(user.results) if user.conversation_id else messages
        audit.messages_expected += 2 * sent
        if user.conversation_id is None:
            audit.lost += 2 * sent
            audit.problem(f"user {user.number}: no conversation created")
            continue
        audit_conversation(audit, user, rows.get(user.conversation_id, []), sent)
    return audit


def audit_conversation(
    audit: Audit, user: LoadUser, found: list[Message], messages: int
) -> None:
    label = f"user {user.number}, conversation {user.conversation_id}"
    audit.messages_found += len(found)
    expected_positions = set(range(2 * messages))
    present = {m.position for m in found if m.position in expected_positions}
    missing = sorted(expected_positions - present)
    extra = len(found) - len(present)
    audit.lost += len(missing)
    audit.duplicated += extra
    if missing:
        audit.problem(f"{label}: positions {missing} are missing")
    if extra:
        positions = [m.position for m in found]
        audit.problem(f"{label}: {extra} extra rows; positions {positions}")

    by_position = {m.position: m for m in found}
    for message in found:
        role = "user" if message.position % 2 == 0 else "assistant"
        if message.role != role:
            audit.wrong_role += 1
            audit.problem(f"{label}: position {message.position} is {message.role}")

    for number, result in enumerate(user.results):
        question = by_position.get(2 * number)
        if question is not None and question.content != result.content:
            audit.user_content_mismatch += 1
            audit.problem(
                f"{label}: question {number} saved as {question.content!r}, "
                f"sent as {result.content!r}"
            )
        answer = by_position.get(2 * number + 1)
        if answer is None or answer.role != "assistant":
            continue
        audit.assistant_statuses[answer.status] += 1
        if answer.status != "complete":
            audit.assistant_not_complete += 1
            audit.problem(
                f"{label}: answer {number} is {answer.status}: {answer.error}"
            )
        if not answer.content:
            audit.assistant_empty += 1
            audit.problem(f"{label}: answer {number} is empty")
        if result.answer is not None and answer.content != result.answer:
            audit.answer_mismatch += 1
            audit.problem(f"{label}: answer {number} differs from the streamed one")
        if (
            result.assistant_message_id is not None
            and answer.id != result.assistant_message_id
        ):
            audit.assistant_id_mismatch += 1
            audit.problem(
                f"{label}: answer {number} is row {answer.id}, "
                f"the stream named {result.assistant_message_id}"
            )
        if answer.latency_ms is not None:
            audit.server_latency_ms.append(answer.latency_ms)
        if answer.first_token_ms is not None:
            audit.server_first_token_ms.append(answer.first_token_ms)


# Reports.


def summarise(
    database: str,
    users: list[LoadUser],
    wall: float,
    audit: Audit,
    log: dict[str, Any],
) -> dict[str, Any]:
    results = [r for u in users for r in u.results]
    answered = [r for r in results if r.total_s is not None]
    http_errors = sum(1 for r in results if r.http_error) + sum(
        1 for u in users if u.conversation_error
    )
    sse_errors = sum(1 for r in results if r.sse_error)
    stages: dict[str, list[float]] = defaultdict(list)
    for result in answered:
        for name, seconds in result.timings.items():
            stages[name].append(seconds)
    failures = [
        f"user {u.number}: {r.http_error or r.sse_error}"
        for u in users
        for r in u.results
        if r.http_error or r.sse_error
    ]
    failures += [
        f"user {u.number}: creating the conversation failed: {u.conversation_error}"
        for u in users
        if u.conversation_error
    ]
    return {
        "database": database,
        "users": len(users),
        "messages_sent": len(results),
        "messages_answered": len(answered),
        "wall_s": round(wall, 2),
        "throughput_per_s": round(len(answered) / wall, 3) if wall else None,
        "total": latency_summary([r.total_s for r in answered if r.total_s]),
        "first_token": latency_summary(
            [r.first_token_s for r in results if r.first_token_s is not None]
        ),
        "turn": latency_summary([r.turn_s for r in results if r.turn_s is not None]),
        "pipeline_timings": {
            name: latency_summary(values) for name, values in sorted(stages.items())
        },
        "http_errors": http_errors,
        "sse_errors": sse_errors,
        "failures": failures[:MAX_PROBLEMS],
        "audit": audit.report(),
        "failed_checks": audit.failed_checks(),
        "service_log": log,
    }


def seconds(summary: dict[str, Any], key: str) -> str:
    value = summary.get(key)
    return "n/a" if value is None else f"{value / 1000:.2f} s"


TABLE_HEADER = (
    "| database | users | messages | wall time | throughput | total p50 | total p95 "
    "| first token p50 | first token p95 | HTTP errors | SSE errors | lost "
    "| duplicated | other failed checks |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(row: dict[str, Any]) -> str:
    audit = row["audit"]
    cells = [
        row["database"],
        str(row["users"]),
        str(row["messages_sent"]),
        f"{row['wall_s']:.1f} s",
        f"{row['throughput_per_s']:.2f} messages/s",
        seconds(row["total"], "p50_ms"),
        seconds(row["total"], "p95_ms"),
        seconds(row["first_token"], "p50_ms"),
        seconds(row["first_token"], "p95_ms"),
        str(row["http_errors"]),
        str(row["sse_errors"]),
        str(audit["lost"]),
        str(audit["duplicated"]),
        str(row["failed_checks"]),
    ]
    return "| " + " | ".join(cells) + " |"


def run_database(
    database: str, args: argparse.Namespace, folder: Path
) -> dict[str, Any]:
    print(f"{database}: starting", file=sys.stderr)
    open_database = sqlite_database if database == "sqlite" else postgresql_database
    log_dir = args.log_dir or folder
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"chat-load-{database}.log"
    with open_database(folder) as url:
        with running_service(
            args.data_dir, url, args.users, folder, log_path
        ) as base_url:
            users, wall = asyncio.run(
                run_load(
                    base_url,
                    args.users,
                    args.messages,
                    args.duration,
                    args.timeout,
                    folder.name,
                )
            )
        print(f"{database}: {wall:.1f} s of load; auditing", file=sys.stderr)
        audit = audit_database(url, users, args.messages)
    row = summarise(database, users, wall, audit, scan_log(log_path))
    row["service_log_path"] = str(log_path) if args.log_dir else None
    for line in row["failures"] + audit.problems:
        print(f"  {database}: {line}", file=sys.stderr)
    print(table_row(row), file=sys.stderr)
    return row


def main() -> int:
    args = parse_args()
    check_args(args)
    result: dict[str, Any] = {
        "machine": machine_info(),
        "data_dir": str(args.data_dir),
        "users": args.users,
        "messages_per_user": None if args.duration else args.messages,
        "duration_s": args.duration,
        "questions": list(QUESTIONS),
        "runs": [],
    }
    for database in args.databases:
        folder = Path(tempfile.mkdtemp(prefix=f"chat-load-{database}-"))
        try:
            result["runs"].append(run_database(database, args, folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    write_json(args.output, result)
    print()
    print(TABLE_HEADER)
    for row in result["runs"]:
        print(table_row(row))
    clean = all(
        row["http_errors"] == 0
        and row["sse_errors"] == 0
        and row["audit"]["lost"] == 0
        and row["audit"]["duplicated"] == 0
        and row["failed_checks"] == 0
        for row in result["runs"]
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
