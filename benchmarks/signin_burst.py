"""Measure what a burst of sign-ins does to everyone else's requests.

Usage:
    python benchmarks/signin_burst.py [--data-dir DIR] [--signins 60] \\
        [--parallel 30] [--databases sqlite,postgresql] [--output burst.json]

For each database the script starts the service (as ``chat_load.py`` does),
registers ``--signins`` accounts, and then signs each of them in once with
the right password, ``--parallel`` at a time. Each sign-in checks an argon2
hash and writes a new sign-in session. Separate accounts keep the
per-account limit out of the way: it counts every attempt until its
password is checked, so many parallel sign-ins to one account get 429.
Meanwhile a second account calls ``GET /me`` every 0.1 s, and the script
records those latencies next to the same call with no burst.
Last, it sends ``--parallel`` wrong passwords for one account at once and
counts the replies: the per-account limit should let 5 through as 401 and
answer the rest with 429.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from bench_common import latency_summary, machine_info, write_json
from chat_load import DATABASES, postgresql_database, running_service, sqlite_database

PASSWORD = "a long study password"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("TORAH_STUDY_DATA_DIR"),
        help="an ingested library (default: $TORAH_STUDY_DATA_DIR)",
    )
    parser.add_argument("--signins", type=int, default=60)
    parser.add_argument(
        "--parallel",
        type=int,
        default=20,
        help="sign-ins at a time; keep it under the per-address limit (30)",
    )
    parser.add_argument(
        "--databases",
        default=",".join(DATABASES),
        help="comma-separated databases (default sqlite,postgresql)",
    )
    parser.add_argument("--output", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("give --data-dir or set TORAH_STUDY_DATA_DIR")
    args.databases = [name.strip() for name in args.databases.split(",")]
    return args


def register(client: httpx.Client, email: str) -> dict[str, str]:
    response = client.post(
        "/auth/register", json={"email": email, "password": PASSWORD}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def timed_me(client: httpx.Client, headers: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    status = client.get("/me", headers=headers).status_code
    return time.perf_counter() - started, status


def run_burst(base_url: str, signins: int, parallel: int) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, timeout=300, trust_env=False) as client:
        emails = [f"learner-{n}@example.org" for n in range(signins)]
        for email in emails:
            register(client, email)
        watcher = register(client, "watcher@example.org")
        quiet = [timed_me(client, watcher)[0] for _ in range(20)]
        during: list[tuple[float, int]] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                during.append(timed_me(client, watcher))
                time.sleep(0.1)

        thread = threading.Thread(target=watch)
        thread.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            codes = list(
                pool.map(
                    lambda email: (
                        client.post(
                            "/auth/login", json={"email": email, "password": PASSWORD}
                        ).status_code
                    ),
                    emails,
                )
            )
        burst_seconds = time.perf_counter() - started
        done.set()
        thread.join()

        wrong = {"email": emails[0], "password": "not the password"}
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            guesses = list(
                pool.map(
                    lambda _: client.post("/auth/login", json=wrong).status_code,
                    range(parallel),
                )
            )
    return {
        "signin_statuses": dict(Counter(codes)),
        "burst_seconds": round(burst_seconds, 2),
        "me_quiet": latency_summary(quiet),
        "me_during_burst": latency_summary([seconds for seconds, _ in during]),
        "me_statuses_during_burst": dict(Counter(status for _, status in during)),
        "parallel_wrong_password_statuses": dict(Counter(guesses)),
    }


def main() -> int:
    args = parse_args()
    results: list[dict[str, Any]] = []
    for database in args.databases:
        with tempfile.TemporaryDirectory(prefix="signin-burst-") as temporary:
            folder = Path(temporary)
            opener = sqlite_database if database == "sqlite" else postgresql_database
            with (
                opener(folder) as url,
                running_service(
                    args.data_dir, url, args.signins + 1, folder, folder / "service.log"
                ) as base_url,
            ):
                result = run_burst(base_url, args.signins, args.parallel)
        result["database"] = database
        results.append(result)
        print(
            f"{database}: sign-ins {result['signin_statuses']} in "
            f"{result['burst_seconds']} s; GET /me p50 "
            f"{result['me_quiet']['p50_ms']} ms quiet, "
            f"{result['me_during_burst']['p50_ms']} ms during the burst "
            f"(p95 {result['me_during_burst']['p95_ms']} ms, statuses "
            f"{result['me_statuses_during_burst']}); {args.parallel} parallel "
            f"wrong passwords: {result['parallel_wrong_password_statuses']}",
            flush=True,
        )
    write_json(args.output, {"machine": machine_info(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
