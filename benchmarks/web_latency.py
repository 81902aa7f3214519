"""Measure what the web app adds on top of the API, and how fast the app loads.

Usage:
    python benchmarks/web_latency.py [--data-dir DIR] [--web-dir DIR] \\
        [--repetitions 5] [--loads 10] [--output web.json] [--markdown]

The script copies the built web app (``web/out``) to a temporary folder, so
that a rebuild during the run changes nothing, and starts the real service
(``uvicorn --factory torah_study.api.app:create_app``) in a child process on
127.0.0.1, as ``chat_load.py`` does: sources-only answers, a new SQLite
accounts database and the web app at ``/``. Debian's Chromium runs headless
through Playwright. The script then measures:

1. page loads: ``--loads`` cold loads of ``/`` (each in a new browser context,
   so the HTTP cache is empty) and as many warm loads (a new tab in the same
   context). Each load reports the navigation timing (``responseEnd``, the
   end of ``DOMContentLoaded`` and of ``load``), the time until the
   "Sign in" heading exists, and the bytes transferred (the
   ``transferSize`` of the page and of every resource, headers included).
   One more cold and warm pair runs first as a warm-up and is not counted;
2. answers: one account registers through the API and one through the
   sign-in screen. For each of ``--repetitions`` rounds and each question,
   the API client and the browser each ask in a new conversation, in
   alternating order. The API client times ``POST
   /conversations/{id}/messages?stream=true`` with httpx to the first
   ``token`` event and to ``done``. The browser opens ``/?c={id}``, types
   the question in "Your question" and presses Enter. Listeners in the page
   record ``performance.now()`` at the Enter, when the app's stream reader
   receives the first chunk with a ``token`` event, when the first answer
   text enters the DOM and when ``data-status="complete"`` is set, so
   Playwright's polling does not enter the timings. Two warm-up questions
   per client come first and are not counted. Each conversation is deleted
   after its question, so the sidebar lists one conversation at most.

The browser-minus-API differences are taken per pair (same question, same
round) and then summarised. Times stop when text enters the DOM, which is
before the browser paints it. The service, the browser and this script share
the machine's cores, so every number includes that contention.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from bench_common import latency_summary, machine_info
from chat_load import running_service, scan_log, sqlite_database

DATA_DIR_ENV = "TORAH_STUDY_DATA_DIR"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_WEB_DIR = REPO / "web" / "out"
DEFAULT_CHROMIUM = Path("/usr/bin/chromium")
# Flags for a headless Chromium on a machine without a display or network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 900}
PASSWORD = "a long benchmark password"
# Text the web app shows in an answer until its first token arrives, in its
# English and Hebrew interfaces (web/lib/i18n.tsx).
WAITING_TEXTS = ["Searching the library…", "מחפש בספרייה…"]
# Milliseconds Playwright waits for a page step that is not timed.
STEP_TIMEOUT_MS = 30_000

# Searches and ref lookups in English and Hebrew. Each comment gives the
# text the question is about, for the reader.
QUESTIONS = (
    "Where does the Torah say to love your neighbor as yourself?",  # Leviticus 19:18
    "מאימתי קורין את שמע בערבית?",  # Mishnah Berakhot 1:1
    "Show me Genesis 1:1-3",  # lookup
    "What does Pirkei Avot say about judging others?",  # Pirkei Avot 1:6
    "בראשית א:א-ג",  # lookup of Genesis 1:1-3
    "Berakhot 2a",  # lookup of a Talmud page
    "ואהבת לרעך כמוך",  # Leviticus 19:18
    "With what may one light the Shabbat lamp?",  # Mishnah Shabbat 2:1
    "איזהו חכם? הלומד מכל אדם",  # Pirkei Avot 4:1
    "Where does the Torah command honoring your father and mother?",  # Exodus 20:12
)
# Asked once by each client before the clock starts, so that one-time costs
# of the first questions (loading models, opening connections) are not timed.
WARM_UP_QUESTIONS = ("Justice, justice shall you pursue", "Psalms 23")

# Installed on the question box before Enter is pressed. It records
# performance.now() at the Enter keydown (capture phase, before the app's own
# handler), when the app's stream reader first receives a chunk with a token
# event, when the newest answer first shows text other than the waiting line,
# and when its data-status becomes complete. The reader is wrapped in this
# page only, and the next navigation discards the wrapper.
ANSWER_PROBE = """(box, waitingTexts) => {
    const probe = {pressed: null, tokenChunk: null, firstText: null,
                   complete: null, failed: null};
    window.__answerProbe = probe;
    const read = ReadableStreamDefaultReader.prototype.read;
    ReadableStreamDefaultReader.prototype.read = function () {
        return read.call(this).then((result) => {
            if (probe.pressed === null || probe.tokenChunk !== null) return result;
            if (!(result.value instanceof Uint8Array)) return result;
            const text = new TextDecoder().decode(result.value);
            if (text.includes('event: token')) probe.tokenChunk = performance.now();
            return result;
        });
    };
    box.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' && probe.pressed === null) {
            probe.pressed = performance.now();
        }
    }, {capture: true});
    const observer = new MutationObserver(() => {
        if (probe.pressed === null) return;
        const now = performance.now();
        if (document.querySelector('[data-testid=chat-error]')) {
            probe.failed = 'chat-error: ' +
                document.querySelector('[data-testid=chat-error]').textContent;
            observer.disconnect();
            return;
        }
        const answers = document.querySelectorAll('[data-testid=assistant-message]');
        const last = answers[answers.length - 1];
        if (!last) return;
        const answer = last.querySelector('.answer');
        if (probe.firstText === null && answer) {
            let text = answer.textContent || '';
            const label = answer.querySelector('[data-testid=abstained]');
            if (label) text = text.replace(label.textContent || '', '');
            text = text.trim();
            if (text && !waitingTexts.includes(text)) probe.firstText = now;
        }
        const status = last.dataset.status;
        if (status === 'complete') {
            probe.complete = now;
            probe.mode = last.dataset.mode;
            observer.disconnect();
        } else if (status === 'failed' || status === 'interrupted') {
            probe.failed = 'answer ' + status;
            observer.disconnect();
        }
    });
    observer.observe(document.body, {subtree: true, childList: true,
        characterData: true, attributes: true, attributeFilter: ['data-status']});
}"""

# Installed before any script of the page runs: records performance.now()
# when a heading "Sign in" first exists in the DOM.
SIGN_IN_PROBE = """(() => {
    window.__signInAt = null;
    const found = () => Array.from(document.querySelectorAll('h1, h2, h3'))
        .some((heading) => heading.textContent.trim() === 'Sign in');
    const observer = new MutationObserver(() => {
        if (window.__signInAt === null && found()) {
            window.__signInAt = performance.now();
            observer.disconnect();
        }
    });
    observer.observe(document, {subtree: true, childList: true});
})();"""

# Reads the navigation timing and every resource entry of a loaded page.
LOAD_TIMINGS = """() => {
    const navigation = performance.getEntriesByType('navigation')[0];
    const resources = performance.getEntriesByType('resource');
    return {
        response_end: navigation.responseEnd,
        dom_content_loaded: navigation.domContentLoadedEventEnd,
        load: navigation.loadEventEnd,
        sign_in_heading: window.__signInAt,
        page_transfer: navigation.transferSize,
        resources: resources.map((entry) => ({
            name: entry.name,
            initiator: entry.initiatorType,
            transfer: entry.transferSize,
            encoded: entry.encodedBodySize,
        })),
    };
}"""

# The start of the newest streamed question's fetch, from Resource Timing.
# The entry appears only once the stream's body has been read to the end.
STREAM_FETCH_START = """() => {
    const entries = performance.getEntriesByType('resource')
        .filter((entry) => entry.name.includes('/messages?stream=true'));
    return entries.length ? entries[entries.length - 1].startTime : null;
}"""


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
        "--web-dir",
        type=Path,
        default=DEFAULT_WEB_DIR,
        help=f"built web app, the folder with index.html (default: {DEFAULT_WEB_DIR})",
    )
    parser.add_argument(
        "--chromium",
        type=Path,
        default=DEFAULT_CHROMIUM,
        help=f"Chromium executable (default: {DEFAULT_CHROMIUM})",
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        default=5,
        help="rounds over the question list, per client (default 5)",
    )
    parser.add_argument(
        "--loads",
        type=int,
        default=10,
        help="cold page loads, and as many warm ones (default 10)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds one answer may take before it counts as failed (default 120)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="keep the service's log here (default: discarded)",
    )
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print Markdown tables on stdout instead of the JSON report",
    )
    return parser.parse_args()


def check_args(args: argparse.Namespace) -> None:
    if args.data_dir is None:
        sys.exit(f"error: give --data-dir or set {DATA_DIR_ENV}.")
    args.data_dir = args.data_dir.resolve()
    if not (args.data_dir / "catalog.json").is_file():
        sys.exit(
            f"error: {args.data_dir} has no catalog.json: "
            "run `torah-study ingest` into it first."
        )
    if not (args.web_dir / "index.html").is_file():
        sys.exit(
            f"error: {args.web_dir} has no index.html: "
            "build the web app with scripts/build-web.sh."
        )
    if not args.chromium.is_file():
        sys.exit(f"error: Chromium not found at {args.chromium}: give --chromium.")
    if args.repetitions < 1 or args.loads < 1:
        sys.exit("error: --repetitions and --loads must be at least 1.")


# The service.


def check_web_app(client: httpx.Client) -> None:
    response = client.get("/")
    if response.status_code != 200 or "/_next/static/" not in response.text:
        raise RuntimeError(
            f"GET / returned HTTP {response.status_code} without the built web app: "
            f"{response.text[:200]}"
        )


# The API client.


def register_with_api(client: httpx.Client, email: str) -> dict[str, str]:
    response = client.post(
        "/auth/register", json={"email": email, "password": PASSWORD}
    )
    if response.status_code != 201:
        raise RuntimeError(
            f"registering {email} failed: HTTP {response.status_code} "
            f"{response.text[:300]}"
        )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def create_conversation(client: httpx.Client, headers: dict[str, str]) -> str:
    response = client.post("/conversations", json={}, headers=headers)
    if response.status_code != 201:
        raise RuntimeError(
            f"creating a conversation failed: HTTP {response.status_code} "
            f"{response.text[:300]}"
        )
    return str(response.json()["id"])


def delete_conversation(
    client: httpx.Client, headers: dict[str, str], conversation_id: str
) -> None:
    response = client.delete(f"/conversations/{conversation_id}", headers=headers)
    if response.status_code != 204:
        print(
            f"warning: deleting conversation {conversation_id} failed: "
            f"HTTP {response.status_code} {response.text[:200]}",
            file=sys.stderr,
        )


def read_events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """Yield the (event, data) pairs of a server-sent event stream, without comments."""
    name = "message"
    data: list[str] = []
    for line in response.iter_lines():
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


@dataclass
class Sample:
    """One question asked once by one client, with times in seconds."""

    client: str
    question: str
    round: int
    first_token_s: float | None = None
    done_s: float | None = None
    enter_to_fetch_s: float | None = None
    token_chunk_s: float | None = None
    mode: str | None = None
    error: str | None = None


def ask_api(
    client: httpx.Client, headers: dict[str, str], question: str, round_number: int
) -> Sample:
    sample = Sample("api", question, round_number)
    conversation_id = create_conversation(client, headers)
    started = time.perf_counter()
    try:
        with client.stream(
            "POST",
            f"/conversations/{conversation_id}/messages",
            params={"stream": "true"},
            json={"content": question},
            headers=headers,
        ) as response:
            if response.status_code != 200:
                body = response.read().decode("utf-8", "replace")
                sample.error = f"HTTP {response.status_code}: {body[:300]}"
                return sample
            for name, data in read_events(response):
                now = time.perf_counter() - started
                if name == "token" and sample.first_token_s is None:
                    sample.first_token_s = now
                elif name == "done":
                    sample.done_s = now
                    sample.mode = json.loads(data).get("mode")
                elif name == "error":
                    sample.error = f"error event: {data[:300]}"
    except httpx.HTTPError as error:
        sample.error = f"{type(error).__name__}: {error}"
    finally:
        delete_conversation(client, headers, conversation_id)
    if sample.error is None and sample.done_s is None:
        sample.error = "the stream ended without a done event"
    return sample


# The browser.


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def new_context(browser: Any, base_url: str) -> Any:
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(STEP_TIMEOUT_MS)
    return context


def register_in_browser(page: Any, email: str) -> dict[str, str]:
    """Create an account on the sign-in screen and return its API headers."""
    page.goto("/")
    page.get_by_role("button", name="New here? Create an account").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account", exact=True).click()
    expect(page.get_by_test_id("sidebar")).to_be_visible()
    token = page.evaluate("localStorage.getItem('torah-study.access')")
    if not token:
        raise RuntimeError("no access token in local storage after registering")
    return {"Authorization": f"Bearer {token}"}


def ask_browser(
    page: Any,
    client: httpx.Client,
    headers: dict[str, str],
    question: str,
    round_number: int,
    timeout: float,
) -> Sample:
    from playwright.sync_api import Error as PlaywrightError

    sample = Sample("browser", question, round_number)
    conversation_id = create_conversation(client, headers)
    try:
        page.goto(f"/?c={conversation_id}")
        box = page.get_by_label("Your question")
        expect(box).to_be_editable()
        # Let the conversation and the weekly portion card finish loading, so
        # their requests do not overlap the timed question.
        page.wait_for_load_state("networkidle")
        box.evaluate(ANSWER_PROBE, WAITING_TEXTS)
        box.fill(question)
        box.press("Enter")
        page.wait_for_function(
            "() => window.__answerProbe.complete !== null"
            " || window.__answerProbe.failed !== null",
            timeout=timeout * 1000,
        )
        probe = page.evaluate("window.__answerProbe")
        if probe["failed"]:
            sample.error = probe["failed"]
            return sample
        pressed = probe["pressed"]
        sample.mode = probe.get("mode") or None
        sample.done_s = (probe["complete"] - pressed) / 1000
        if probe["firstText"] is not None:
            sample.first_token_s = (probe["firstText"] - pressed) / 1000
        if probe["tokenChunk"] is not None:
            sample.token_chunk_s = (probe["tokenChunk"] - pressed) / 1000
        fetch_start = page.wait_for_function(STREAM_FETCH_START).json_value()
        sample.enter_to_fetch_s = (fetch_start - pressed) / 1000
        # The app reads the saved conversation back after the answer ends.
        page.wait_for_load_state("networkidle")
    except PlaywrightError as error:
        sample.error = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    finally:
        delete_conversation(client, headers, conversation_id)
    return sample


def load_once(page: Any) -> dict[str, Any]:
    page.goto("/", wait_until="load")
    expect(page.get_by_role("heading", name="Sign in")).to_be_attached()
    page.wait_for_load_state("networkidle")
    timings = page.evaluate(LOAD_TIMINGS)
    resources = timings.pop("resources")
    scripts = [r for r in resources if r["name"].split("?")[0].endswith(".js")]
    timings["transfer_bytes"] = timings.pop("page_transfer") + sum(
        r["transfer"] for r in resources
    )
    timings["requests"] = 1 + len(resources)
    timings["from_cache"] = sum(1 for r in resources if r["transfer"] == 0)
    timings["script_files"] = len(scripts)
    timings["script_bytes"] = sum(r["encoded"] for r in scripts)
    return timings


def measure_page_loads(browser: Any, base_url: str, loads: int) -> dict[str, Any]:
    """Load ``/`` cold in a new context, then warm in a new tab of that context."""
    runs: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    for number in range(loads + 1):
        context = new_context(browser, base_url)
        try:
            context.add_init_script(SIGN_IN_PROBE)
            cold_page = context.new_page()
            cold = load_once(cold_page)
            cold_page.close()
            warm_page = context.new_page()
            warm = load_once(warm_page)
        finally:
            context.close()
        # The first pair warms the browser process and is not counted.
        if number > 0:
            runs["cold"].append(cold)
            runs["warm"].append(warm)
    return {name: summarise_loads(values) for name, values in runs.items()}


def summarise_loads(loads: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in ("response_end", "dom_content_loaded", "load", "sign_in_heading"):
        values = [load[key] / 1000 for load in loads if load[key] is not None]
        summary[key] = latency_summary(values)
    for key in ("transfer_bytes", "requests", "from_cache", "script_files"):
        values = [load[key] for load in loads]
        summary[key] = {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
        }
    summary["script_bytes"] = loads[0]["script_bytes"]
    return summary


def static_js_size(web_dir: Path) -> dict[str, Any]:
    """Count the JavaScript files of the build, raw and gzip-compressed (level 6)."""
    files = sorted((web_dir / "_next" / "static").rglob("*.js"))
    raw = 0
    compressed = 0
    for path in files:
        data = path.read_bytes()
        raw += len(data)
        compressed += len(gzip.compress(data, compresslevel=6))
    return {"files": len(files), "bytes": raw, "gzip_level_6_bytes": compressed}


# The run.


def run_questions(
    page: Any,
    client: httpx.Client,
    api_headers: dict[str, str],
    browser_headers: dict[str, str],
    repetitions: int,
    timeout: float,
) -> list[Sample]:
    for question in WARM_UP_QUESTIONS:
        for warm in (
            ask_api(client, api_headers, question, -1),
            ask_browser(page, client, browser_headers, question, -1, timeout),
        ):
            if warm.error:
                raise RuntimeError(f"warm-up question {question!r}: {warm.error}")
    samples: list[Sample] = []
    for round_number in range(repetitions):
        started = time.monotonic()
        for number, question in enumerate(QUESTIONS):
            # Alternate which client asks first, so neither always follows
            # the other's retrieval.
            clients = ["api", "browser"]
            if (round_number + number) % 2:
                clients.reverse()
            for name in clients:
                if name == "api":
                    sample = ask_api(client, api_headers, question, round_number)
                else:
                    sample = ask_browser(
                        page, client, browser_headers, question, round_number, timeout
                    )
                samples.append(sample)
                if sample.error:
                    print(
                        f"  {name}: {question!r} failed: {sample.error}",
                        file=sys.stderr,
                    )
        print(
            f"round {round_number + 1} of {repetitions}: "
            f"{time.monotonic() - started:.1f} s",
            file=sys.stderr,
        )
    return samples


def paired_differences(
    samples: list[Sample], browser_key: str, api_key: str, mode: str | None = None
) -> list[float]:
    """Browser minus API for each question and round that both clients answered.

    With ``mode``, only pairs whose API answer had that mode (``lookup`` or
    ``search``) count.
    """
    api = {(s.question, s.round): s for s in samples if s.client == "api"}
    differences = []
    for sample in samples:
        if sample.client != "browser":
            continue
        api_sample = api.get((sample.question, sample.round))
        if api_sample is None or (mode is not None and api_sample.mode != mode):
            continue
        api_value = getattr(api_sample, api_key)
        browser_value = getattr(sample, browser_key)
        if api_value is not None and browser_value is not None:
            differences.append(browser_value - api_value)
    return differences


def summarise_answers(samples: list[Sample]) -> dict[str, Any]:
    def values(client: str, key: str, question: str | None = None) -> list[float]:
        return [
            getattr(s, key)
            for s in samples
            if s.client == client
            and getattr(s, key) is not None
            and (question is None or s.question == question)
        ]

    modes: dict[str, set[str]] = defaultdict(set)
    for sample in samples:
        if sample.mode:
            modes[sample.question].add(sample.mode)
    per_question = [
        {
            "question": question,
            "modes": sorted(modes[question]),
            "api_first_token": latency_summary(
                values("api", "first_token_s", question)
            ),
            "api_done": latency_summary(values("api", "done_s", question)),
            "browser_first_text": latency_summary(
                values("browser", "first_token_s", question)
            ),
            "browser_complete": latency_summary(values("browser", "done_s", question)),
        }
        for question in QUESTIONS
    ]
    return {
        "api": {
            "first_token": latency_summary(values("api", "first_token_s")),
            "done": latency_summary(values("api", "done_s")),
        },
        "browser": {
            "first_text": latency_summary(values("browser", "first_token_s")),
            "complete": latency_summary(values("browser", "done_s")),
            "enter_to_fetch": latency_summary(values("browser", "enter_to_fetch_s")),
            "enter_to_token_chunk": latency_summary(values("browser", "token_chunk_s")),
            "token_chunk_to_first_text": latency_summary(
                [
                    s.first_token_s - s.token_chunk_s
                    for s in samples
                    if s.first_token_s is not None and s.token_chunk_s is not None
                ]
            ),
        },
        "browser_minus_api": {
            "first_token": latency_summary(
                paired_differences(samples, "first_token_s", "first_token_s")
            ),
            "done": latency_summary(paired_differences(samples, "done_s", "done_s")),
            "token_chunk": latency_summary(
                paired_differences(samples, "token_chunk_s", "first_token_s")
            ),
            "first_token_lookups": latency_summary(
                paired_differences(
                    samples, "first_token_s", "first_token_s", mode="lookup"
                )
            ),
            "done_lookups": latency_summary(
                paired_differences(samples, "done_s", "done_s", mode="lookup")
            ),
        },
        "per_question": per_question,
    }


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    web_dir = folder / "web"
    shutil.copytree(args.web_dir, web_dir)
    log_dir = args.log_dir or folder
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "web-latency.log"
    with (
        sqlite_database(folder) as url,
        # Two accounts register from 127.0.0.1: the API client's and the browser's.
        running_service(
            args.data_dir,
            url,
            2,
            folder,
            log_path,
            {"TORAH_STUDY_WEB_DIR": str(web_dir)},
        ) as base_url,
        httpx.Client(
            base_url=base_url, timeout=args.timeout, trust_env=False
        ) as client,
        sync_playwright() as playwright,
    ):
        check_web_app(client)
        browser = playwright.chromium.launch(
            executable_path=str(args.chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            print(f"page loads: {args.loads} cold and warm", file=sys.stderr)
            page_load = measure_page_loads(browser, base_url, args.loads)
            context = new_context(browser, base_url)
            page = context.new_page()
            page_errors: list[str] = []
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            api_headers = register_with_api(client, "api-client@example.org")
            browser_headers = register_in_browser(page, "browser-client@example.org")
            print(
                f"questions: {len(QUESTIONS)} × {args.repetitions} rounds per client",
                file=sys.stderr,
            )
            samples = run_questions(
                page,
                client,
                api_headers,
                browser_headers,
                args.repetitions,
                args.timeout,
            )
            context.close()
            chromium_version = browser.version
        finally:
            browser.close()
    result: dict[str, Any] = {
        "chromium": chromium_version,
        **summarise_answers(samples),
        "page_load": page_load,
        "static_js": static_js_size(args.web_dir),
        "failures": [asdict(s) for s in samples if s.error],
        "page_errors": page_errors,
        "service_log": scan_log(log_path),
        "service_log_path": str(log_path) if args.log_dir else None,
    }
    return result


# Reports.


def milliseconds(summary: dict[str, Any], key: str) -> str:
    value = summary.get(key)
    return "n/a" if value is None else f"{value:,.0f} ms"


def kilobytes(value: float) -> str:
    return f"{value / 1000:,.1f} kB"


def markdown_tables(result: dict[str, Any]) -> str:
    rows: list[tuple[str, dict[str, Any]]] = [
        ("API: request to first `token` event", result["api"]["first_token"]),
        ("API: request to `done` event", result["api"]["done"]),
        ("browser: Enter to first answer text", result["browser"]["first_text"]),
        ("browser: Enter to `data-status=complete`", result["browser"]["complete"]),
        (
            "browser − API, first token (paired)",
            result["browser_minus_api"]["first_token"],
        ),
        ("browser − API, done (paired)", result["browser_minus_api"]["done"]),
        (
            "browser − API, first token, ref lookups only (paired)",
            result["browser_minus_api"]["first_token_lookups"],
        ),
        (
            "browser − API, done, ref lookups only (paired)",
            result["browser_minus_api"]["done_lookups"],
        ),
        (
            "browser: Enter to the stream's fetch start",
            result["browser"]["enter_to_fetch"],
        ),
        (
            "browser: Enter to the first `token` chunk read by the app",
            result["browser"]["enter_to_token_chunk"],
        ),
        (
            "browser − API, first `token` chunk (paired)",
            result["browser_minus_api"]["token_chunk"],
        ),
        (
            "browser: first `token` chunk to first answer text",
            result["browser"]["token_chunk_to_first_text"],
        ),
    ]
    labels = {
        "response_end": "`responseEnd`",
        "dom_content_loaded": "`DOMContentLoaded` end",
        "load": "`load` end",
        "sign_in_heading": '"Sign in" heading exists',
    }
    for kind in ("cold", "warm"):
        for key, label in labels.items():
            rows.append(
                (f"{kind} load of `/`: {label}", result["page_load"][kind][key])
            )
    lines = ["| measure | n | median | p95 |", "|---|---|---|---|"]
    for label, summary in rows:
        lines.append(
            f"| {label} | {summary.get('n', 0)} | {milliseconds(summary, 'p50_ms')} "
            f"| {milliseconds(summary, 'p95_ms')} |"
        )

    lines += ["", "| page load | cold | warm |", "|---|---|---|"]
    cold, warm = result["page_load"]["cold"], result["page_load"]["warm"]
    lines.append(
        f"| bytes transferred (median) | {kilobytes(cold['transfer_bytes']['median'])} "
        f"| {kilobytes(warm['transfer_bytes']['median'])} |"
    )
    lines.append(
        f"| requests (median) | {cold['requests']['median']:g} "
        f"| {warm['requests']['median']:g} |"
    )
    lines.append(
        f"| resources from the cache (median) | {cold['from_cache']['median']:g} "
        f"| {warm['from_cache']['median']:g} |"
    )
    lines.append(
        f"| JavaScript the sign-in page loads | {cold['script_files']['median']:g} "
        f"files, {kilobytes(cold['script_bytes'])} | |"
    )
    static = result["static_js"]
    lines.append(
        f"| JavaScript in `_next/static` | {static['files']} files, "
        f"{kilobytes(static['bytes'])} ({kilobytes(static['gzip_level_6_bytes'])} "
        "gzip -6) | |"
    )

    lines += [
        "",
        "| question | mode | API first token | API done | browser first text "
        "| browser complete |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["per_question"]:
        lines.append(
            f"| {row['question']} | {', '.join(row['modes'])} "
            f"| {milliseconds(row['api_first_token'], 'p50_ms')} "
            f"| {milliseconds(row['api_done'], 'p50_ms')} "
            f"| {milliseconds(row['browser_first_text'], 'p50_ms')} "
            f"| {milliseconds(row['browser_complete'], 'p50_ms')} |"
        )
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    check_args(args)
    result: dict[str, Any] = {
        "machine": machine_info(),
        "data_dir": str(args.data_dir),
        "web_dir": str(args.web_dir.resolve()),
        "repetitions": args.repetitions,
        "loads": args.loads,
        "questions": list(QUESTIONS),
    }
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="web-latency-"))
    try:
        result.update(run(args, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result["wall_s"] = round(time.monotonic() - started, 1)
    result["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    print(markdown_tables(result) if args.markdown else text)
    failed = result["failures"] or result["page_errors"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
