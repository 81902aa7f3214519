"""SIGTERM while answers stream: a grace period, then a clean stop.

Everything runs for real: ``torah-study serve`` in a subprocess on
127.0.0.1 with accounts in SQLite, the OpenAI-compatible answer provider
pointed at a local stub that streams one word every WORD_DELAY seconds, and
clients that read the server-sent events over HTTP. The signal goes to the
serving process only, as a container runtime sends it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from fault_server import (
    Fault,
    FaultServer,
    RecordedRequest,
    fault_server,
    openai_events,
    sse_fault,
)
from servers import TEST_PASSWORD, TEST_SECRET, free_port
from torah_study.config import Settings
from torah_study.writer_lock import LOCK_FILE

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
QUESTION = "What does the Torah teach about loving your neighbour?"
WORD_DELAY = 0.1
SHORT_ANSWER = 3
LONG_ANSWER = 100
# How long after its grace period a stopped server may take to exit: the
# stopped stream's wait for its answer thread (STOP_WAIT_SECONDS is 5 at
# most, well under a second with this stub) and uvicorn's own shutdown.
EXIT_MARGIN = 6.0


def answer_text(sentences: int) -> str:
    """Return the full answer the stub sends, citing source [1]."""
    return "".join(
        f"Point {number} says the verse teaches love of one's neighbour [1]. "
        for number in range(sentences)
    )


@dataclass
class AnswerStub:
    """The answer model: the number of sentences of its next answers."""

    server: FaultServer
    sentences: int = SHORT_ANSWER

    def respond(self, request: RecordedRequest) -> Fault:
        words = answer_text(self.sentences).split(" ")
        pieces = [word + " " for word in words[:-1] if word]
        fault = sse_fault(openai_events(pieces))
        fault.chunk_delay = WORD_DELAY
        return fault


@pytest.fixture()
def stub() -> Iterator[AnswerStub]:
    holder: list[AnswerStub] = []
    with fault_server(lambda request: holder[0].respond(request)) as server:
        holder.append(AnswerStub(server))
        yield holder[0]


@pytest.fixture(scope="module")
def library_copy(
    library_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the test library, so the served process writes nothing shared."""
    target = tmp_path_factory.mktemp("shutdown") / "library"
    shutil.copytree(
        library_settings.data_dir, target, ignore=shutil.ignore_patterns(LOCK_FILE)
    )
    return target


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    database: Path
    log: Path


@dataclass
class StreamRead:
    """What a client received from one streamed answer."""

    status: int = 0
    events: list[tuple[str, Any]] = field(default_factory=list)
    failure: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def tokens(self) -> str:
        return "".join(data for kind, data in self.events if kind == "token")


def start_server(
    library: Path, stub: AnswerStub, tmp_path: Path, grace: int, workers: int
) -> Server:
    database = tmp_path / "accounts.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORAH_STUDY_")}
    env.update(
        # The served process imports this checkout's source.
        PYTHONPATH=str(REPO / "src"),
        OMP_NUM_THREADS="1",
        TORAH_STUDY_DATA_DIR=str(library),
        TORAH_STUDY_DATABASE_URL=f"sqlite:///{database}",
        TORAH_STUDY_JWT_SECRET=TEST_SECRET,
        TORAH_STUDY_LLM_PROVIDER="openai",
        TORAH_STUDY_OPENAI_BASE_URL=f"{stub.server.base_url}/v1",
        TORAH_STUDY_OPENAI_API_KEY="unused",
        TORAH_STUDY_LLM_MODEL="stub-model",
        TORAH_STUDY_SHUTDOWN_GRACE_SECONDS=str(grace),
        TORAH_STUDY_KEEPALIVE_SECONDS="1",
        TORAH_STUDY_REGISTER_LIMIT_PER_ADDRESS="1000",
    )
    port = free_port()
    command = [sys.executable, "-m", "torah_study.cli", "serve", "--port", str(port)]
    log = tmp_path / "server.log"
    with log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", database, log)
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise AssertionError(f"the server did not start:\n{read_log(server)}")
        try:
            if httpx.get(f"{server.url}/health", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)


def stop_server(server: Server) -> None:
    """Kill what is left of the server's process group."""
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=30)


def read_log(server: Server) -> str:
    return server.log.read_text(encoding="utf-8")[-4000:]


@pytest.fixture()
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        stop_server(server)


def read_stream(url: str, headers: dict[str, str], body: Any, into: StreamRead) -> None:
    """Read one SSE response into ``into`` until the server closes it."""
    try:
        with httpx.stream("POST", url, json=body, headers=headers, timeout=90) as r:
            into.status = r.status_code
            kind = "message"
            for line in r.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    into.events.append((kind, json.loads(line[5:].strip())))
    except httpx.HTTPError as error:
        into.failure = repr(error)
    finally:
        into.done.set()


def ask_both(server: Server) -> tuple[StreamRead, StreamRead]:
    """Ask in a conversation and on /chat/stream; return their readers."""
    response = httpx.post(
        f"{server.url}/auth/register",
        json={"email": "listener@example.org", "password": TEST_PASSWORD},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    created = httpx.post(
        f"{server.url}/conversations", headers=headers, json={}, timeout=60
    )
    assert created.status_code == 201, created.text
    conversation = created.json()["id"]
    turn, chat = StreamRead(), StreamRead()
    requests = (
        (
            f"{server.url}/conversations/{conversation}/messages?stream=true",
            {"content": QUESTION},
            turn,
        ),
        (f"{server.url}/chat/stream", {"question": QUESTION}, chat),
    )
    for url, body, into in requests:
        threading.Thread(
            target=read_stream, args=(url, headers, body, into), daemon=True
        ).start()
    return turn, chat


def wait_for_tokens(*reads: StreamRead) -> None:
    deadline = time.monotonic() + 90
    while not all("token" in read.kinds() for read in reads):
        failed = [read for read in reads if read.done.is_set()]
        assert not failed, [(read.failure, read.kinds()) for read in failed]
        assert time.monotonic() < deadline, "no answer began to stream"
        time.sleep(0.05)


def terminate(server: Server) -> float:
    """Send SIGTERM to the serving process; return seconds until it exited."""
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the server did not exit:\n{read_log(server)}") from None
    return time.monotonic() - sent


def answer_rows(database: Path) -> dict[str, tuple[str, str, str | None]]:
    """Return every answer's status, content and error by message id."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT id, status, content, error FROM messages WHERE role = 'assistant'"
        ).fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def test_stream_within_grace_completes(
    library_copy: Path, stub: AnswerStub, tmp_path: Path, servers: list[Server]
) -> None:
    grace = 15
    stub.sentences = SHORT_ANSWER
    server = start_server(library_copy, stub, tmp_path, grace, workers=1)
    servers.append(server)
    turn, chat = ask_both(server)
    wait_for_tokens(turn, chat)

    elapsed = terminate(server)

    assert turn.done.wait(10)
    assert chat.done.wait(10)
    log = read_log(server)
    for read in (turn, chat):
        assert read.failure == "", log
        assert read.status == 200
        assert read.kinds()[-1] == "done", read.kinds()
        assert "error" not in read.kinds()
        assert read.tokens() == answer_text(SHORT_ANSWER)
    # The streams ended on their own, well before the grace period did.
    assert elapsed < grace, log
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert "2 answer streams finished in time, 0 were stopped" in log

    answer_id = turn.events[0][1]["assistant_message_id"]
    rows = answer_rows(server.database)
    assert rows[answer_id][0] == "complete"
    assert rows[answer_id][1] == answer_text(SHORT_ANSWER)
    assert [status for status, _, _ in rows.values()] == ["complete"]


@pytest.mark.parametrize("workers", [1, 2])
def test_stream_past_grace_is_interrupted(
    library_copy: Path,
    stub: AnswerStub,
    tmp_path: Path,
    servers: list[Server],
    workers: int,
) -> None:
    grace = 3
    stub.sentences = LONG_ANSWER
    server = start_server(library_copy, stub, tmp_path, grace, workers)
    servers.append(server)
    turn, chat = ask_both(server)
    wait_for_tokens(turn, chat)

    elapsed = terminate(server)

    assert turn.done.wait(10)
    assert chat.done.wait(10)
    log = read_log(server)
    full = answer_text(LONG_ANSWER)
    for read in (turn, chat):
        assert read.failure == "", log
        assert read.status == 200
        kind, data = read.events[-1]
        assert kind == "error", read.kinds()
        assert data["code"] == "server_shutdown"
        assert "shutting down" in data["message"]
        assert "done" not in read.kinds()
        assert read.tokens()
        assert full.startswith(read.tokens())
    assert grace <= elapsed < grace + EXIT_MARGIN, log
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert "Stopping 1 answer streams" in log or "Stopping 2 answer streams" in log

    answer_id = turn.events[0][1]["assistant_message_id"]
    rows = answer_rows(server.database)
    status, content, error = rows[answer_id]
    assert status == "interrupted"
    assert error
    assert content
    assert full.startswith(content)
    assert len(content) < len(full)
    # The client received no more than was saved.
    assert content.startswith(turn.tokens())
    assert [status for status, _, _ in rows.values()] == ["interrupted"]
