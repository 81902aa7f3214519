"""Several API worker processes serve while an ingest adds and rewrites books.

Everything runs for real: the library comes from the Sefaria export, the
server is ``torah-study serve --workers 3`` on 127.0.0.1 with accounts in
SQLite, and the second ingest is ``torah-study ingest`` in its own process.
Reader threads query over new connections the whole time, so the kernel
spreads the requests over the workers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import TEST_PASSWORD, TEST_SECRET, free_port
from torah_study.config import Settings
from torah_study.ingest import STATE_FILE, ingest
from torah_study.writer_lock import LOCK_FILE

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WORKERS = 3
REFRESH_SECONDS = 1.0
READERS = 4
BOOK_DIRS = (
    "json/Tanach/Torah/Genesis",
    "json/Tanach/Torah/Exodus",
    "json/Mishnah/Seder Nezikin/Pirkei Avot",
)
# Books of the second ingest: Exodus and Pirkei Avot are new, Genesis is
# rewritten. Pirkei Avot is also the dense scope, so the embed stage runs.
SECOND_BOOKS = ("Genesis", "Exodus", "Pirkei Avot")
DENSE_SCOPE = ("Pirkei Avot",)


@dataclass
class Probe:
    """One request of a reader thread and what its response showed."""

    started: float
    path: str
    ok: bool
    detail: str
    found_exodus: bool = False
    process: int = 0
    books: int = 0


def _check_search(expected: str | None) -> Callable[[httpx.Response], Probe]:
    def check(response: httpx.Response) -> Probe:
        probe = Probe(0.0, "", False, f"{response.status_code} {response.text[:200]}")
        if response.status_code != 200:
            return probe
        body = response.json()
        results = body.get("results")
        if not isinstance(results, list) or not isinstance(body.get("mode"), str):
            return probe
        refs = [result["ref"] for result in results]
        if not all(isinstance(ref, str) and ref for ref in refs):
            return probe
        if expected is not None and expected not in refs:
            probe.detail = f"{expected} missing from {refs}"
            return probe
        probe.ok = True
        probe.found_exodus = "Exodus 20:13" in refs
        return probe

    return check


def _check_text(ref: str, required: bool) -> Callable[[httpx.Response], Probe]:
    def check(response: httpx.Response) -> Probe:
        probe = Probe(0.0, "", False, f"{response.status_code} {response.text[:200]}")
        body = response.json()
        if response.status_code == 404 and not required:
            probe.ok = isinstance(body.get("detail"), str)
            return probe
        if response.status_code != 200:
            return probe
        segments = body.get("segments") or [{}]
        if segments[0].get("ref") != ref or not segments[0].get("en"):
            return probe
        probe.ok = True
        probe.found_exodus = ref.startswith("Exodus")
        return probe

    return check


def _check_health(response: httpx.Response) -> Probe:
    probe = Probe(0.0, "", False, f"{response.status_code} {response.text[:200]}")
    if response.status_code != 200:
        return probe
    body = response.json()
    probe.ok = body.get("status") == "ok" and isinstance(body.get("process"), int)
    probe.process = int(body.get("process", 0))
    probe.books = int(body.get("books", 0))
    return probe


PROBES: tuple[tuple[str, Callable[[httpx.Response], Probe]], ...] = (
    (
        "/search?q=In the beginning God created the heaven and the earth",
        _check_search("Genesis 1:1"),
    ),
    ("/texts/Genesis 1:1", _check_text("Genesis 1:1", required=True)),
    ("/search?q=Thou shalt not murder", _check_search(None)),
    ("/texts/Exodus 20:13", _check_text("Exodus 20:13", required=False)),
    ("/health", _check_health),
)


def _read_continuously(
    base_url: str, headers: dict[str, str], stop: threading.Event, log: list[Probe]
) -> None:
    """Send the probes in turn, each on a new connection, until ``stop`` is set."""
    # "Connection: close" makes every request open a new connection, which
    # any of the worker processes may accept.
    client = httpx.Client(
        base_url=base_url, timeout=60, headers={**headers, "Connection": "close"}
    )
    number = 0
    with client:
        while not stop.is_set():
            path, check = PROBES[number % len(PROBES)]
            number += 1
            started = time.monotonic()
            try:
                response = client.get(path)
                probe = check(response)
            except (httpx.HTTPError, ValueError) as error:
                probe = Probe(0.0, "", False, repr(error))
            probe.started = started
            probe.path = path
            log.append(probe)


def _environment(data_dir: Path) -> dict[str, str]:
    """Settings for the server and CLI processes, without the caller's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORAH_STUDY_")}
    env.update(
        PYTHONPATH=str(REPO / "src"),
        OMP_NUM_THREADS="1",
        TORAH_STUDY_DATA_DIR=str(data_dir),
        TORAH_STUDY_JWT_SECRET=TEST_SECRET,
        TORAH_STUDY_LLM_PROVIDER="sources",
        TORAH_STUDY_INDEX_REFRESH_SECONDS=str(REFRESH_SECONDS),
        TORAH_STUDY_REGISTER_LIMIT_PER_ADDRESS="1000",
        TORAH_STUDY_EMBEDDING_WORKERS="1",
    )
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "torah_study.cli", *args]


@pytest.fixture()
def small_export(export_dir: Path, tmp_path: Path) -> Path:
    """A copy of three books of the export, with its schemas and links."""
    root = tmp_path / "export"
    for relative in (*BOOK_DIRS, "schemas", "links"):
        shutil.copytree(export_dir / relative, root / relative)
    shutil.copy(export_dir / "table_of_contents.json", root)
    return root


@pytest.fixture()
def genesis_library(small_export: Path, tmp_path: Path) -> Settings:
    """A data folder with Genesis ingested, keyword search only."""
    settings = Settings(
        data_dir=tmp_path / "data",
        books=("Genesis",),
        dense_scope=DENSE_SCOPE,
        _env_file=None,  # type: ignore[call-arg]
    )
    ingest(settings, small_export, show_progress=False)
    return settings


@pytest.fixture()
def server(genesis_library: Settings, tmp_path: Path) -> Iterator[str]:
    """``torah-study serve --workers 3`` on a free port; yields its URL."""
    port = free_port()
    log = (tmp_path / "server.log").open("w", encoding="utf-8")
    process = subprocess.Popen(
        _cli("serve", "--workers", str(WORKERS), "--port", str(port)),
        cwd=tmp_path,
        env=_environment(genesis_library.data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            if process.poll() is not None or time.time() > deadline:
                raise AssertionError(
                    "the server did not start:\n"
                    + (tmp_path / "server.log").read_text(encoding="utf-8")[-3000:]
                )
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        # The server runs in its own session, so the group is its processes.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


def _sign_in(url: str) -> dict[str, str]:
    response = httpx.post(
        f"{url}/auth/register",
        json={"email": "reader@example.org", "password": TEST_PASSWORD},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _wait_for_lock_holder(data_dir: Path, pid: int, process: Any) -> bool:
    """Wait until process ``pid`` holds the write lock; False if it ended first."""
    path = data_dir / LOCK_FILE
    while process.poll() is None:
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return False


def test_workers_serve_during_ingest(
    server: str, genesis_library: Settings, small_export: Path, tmp_path: Path
) -> None:
    data_dir = genesis_library.data_dir
    headers = _sign_in(server)
    stop = threading.Event()
    logs: list[list[Probe]] = [[] for _ in range(READERS)]
    readers = [
        threading.Thread(target=_read_continuously, args=(server, headers, stop, log))
        for log in logs
    ]
    for reader in readers:
        reader.start()
    try:
        time.sleep(3)

        # Forget Genesis's hash so that the ingest rewrites it.
        state_path = data_dir / STATE_FILE
        state = json.loads(state_path.read_text(encoding="utf-8"))
        del state["books"]["Genesis"]
        state_path.write_text(json.dumps(state), encoding="utf-8")

        ingest_args = (
            "ingest",
            "--export-dir",
            str(small_export),
            "--books",
            *SECOND_BOOKS,
            "--dense-scope",
            *DENSE_SCOPE,
            "--quiet",
        )
        env = _environment(data_dir)
        ingest_started = time.monotonic()
        first = subprocess.Popen(
            _cli(*ingest_args),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert _wait_for_lock_holder(data_dir, first.pid, first), first.communicate()
        second = subprocess.run(
            _cli(*ingest_args),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        first_was_running = first.poll() is None
        output, errors = first.communicate(timeout=600)
        ingest_done = time.monotonic()
        assert first.returncode == 0, errors
        assert "books: 3" in output

        # Every request that starts one refresh interval after the ingest
        # ended must see the new book, whichever worker takes it.
        fresh_from = ingest_done + REFRESH_SECONDS + 0.2
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(1)
            after = [p for log in logs for p in log if p.started >= fresh_from]
            workers = {p.process for p in after if p.path == "/health"}
            if len(workers) >= WORKERS and len(after) >= 40:
                break
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=120)

    probes = sorted((p for log in logs for p in log), key=lambda p: p.started)
    failed = [p for p in probes if not p.ok]
    assert failed == [], "\n".join(f"{p.path}: {p.detail}" for p in failed[:20])

    assert second.returncode == 1
    assert first_was_running
    assert "Another process is writing" in second.stderr
    assert f"process {first.pid}" in second.stderr

    before = [p for p in probes if p.started < ingest_started]
    during = [p for p in probes if ingest_started <= p.started < ingest_done]
    after = [p for p in probes if p.started >= fresh_from]
    print(
        f"requests: {len(before)} before, {len(during)} during "
        f"({ingest_done - ingest_started:.1f} s) and {len(after)} after the ingest"
    )
    assert before and during
    assert not any(p.found_exodus for p in before)

    exodus_probes = [
        p
        for p in after
        if p.path in ("/texts/Exodus 20:13", "/search?q=Thou shalt not murder")
    ]
    assert len(exodus_probes) >= 8
    stale = [p.path for p in exodus_probes if not p.found_exodus]
    assert stale == []

    health = [p for p in after if p.path == "/health"]
    assert len({p.process for p in health}) == WORKERS
    assert {p.books for p in health} == {3}
