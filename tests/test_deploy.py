"""The Dockerfile, compose file, env example and nginx sample match the project.

No container engine runs here, so the images are not built. The compose file
is validated by `docker-compose config` (Debian's docker-compose 1.29, which
needs no engine), the nginx sample by `nginx -t` and by streaming server-sent
events through a real nginx. Without those programs the tests skip, unless
TORAH_STUDY_REQUIRE_COMPOSE=1 or TORAH_STUDY_REQUIRE_NGINX=1 (as in CI).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from torah_study.api import web
from torah_study.api.app import create_app
from torah_study.api.shutdown import uvicorn_grace_seconds
from torah_study.config import Settings
from torah_study.index import pg_search

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
POSTGRES_DIR = ROOT / "deploy" / "postgres"
NGINX_SITE = ROOT / "deploy" / "nginx.conf"
SETTING_NAME = re.compile(r"\bTORAH_STUDY_[A-Z0-9_]+")
# Names that are no field of Settings: switches of the tests and CI.
NOT_SETTINGS = {"TORAH_STUDY_REQUIRE_COMPOSE", "TORAH_STUDY_REQUIRE_NGINX"}


def required(tool: str) -> bool:
    return os.environ.get(f"TORAH_STUDY_REQUIRE_{tool.upper()}") == "1"


def find_tool(name: str, tool: str) -> str:
    """Return the path of a program; skip without it, or fail when required."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        message = f"{name} is not installed (apt-get install {name})"
        if required(tool):
            pytest.fail(f"{message}, and TORAH_STUDY_REQUIRE_{tool.upper()}=1")
        pytest.skip(message)
    return path


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """Return the Dockerfile's instructions as (keyword, arguments) pairs."""
    joined: list[str] = []
    pending = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    pairs = []
    for line in joined:
        keyword, _, arguments = line.partition(" ")
        pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def stages(dockerfile: Path) -> dict[str, list[tuple[str, str]]]:
    """Return each build stage's instructions by stage name."""
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            current = [(keyword, arguments)]
            match = re.search(r"\bAS\s+(\S+)", arguments, re.IGNORECASE)
            named[match.group(1) if match else arguments] = current
        else:
            current.append((keyword, arguments))
    return named


def env_values(stage: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", arguments):
                values[name] = value
    return values


def setting_names(text: str) -> set[str]:
    return set(SETTING_NAME.findall(text)) - NOT_SETTINGS


# The image.


def test_dockerfile_builds_web_like_bootstrap() -> None:
    web_stage = stages(DOCKERFILE)["web"]
    assert web_stage[0][1].startswith("node:20")
    runs = [arguments for keyword, arguments in web_stage if keyword == "RUN"]
    assert "scripts/build-web.sh" in runs
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text(encoding="utf-8")
    assert "scripts/build-web.sh" in bootstrap


def test_dockerfile_installs_like_bootstrap() -> None:
    service = stages(DOCKERFILE)["service"]
    assert service[0][1].startswith("python:3.11-slim")
    runs = " ".join(arguments for keyword, arguments in service if keyword == "RUN")
    # The install command of scripts/bootstrap.sh, with the image's python.
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text(encoding="utf-8")
    assert '.venv/bin/python -m pip install --quiet -e ".[$extras]"' in bootstrap
    assert 'python -m pip install --quiet -e "."' in runs
    assert 'python -m pip install --quiet -e ".[local-llm]"' in runs
    # The local model runtime only with the build argument.
    assert re.search(r'if \[ "\$LOCAL_LLM" = "1" \]; then\s+export CMAKE_ARGS', runs)
    assert ("ARG", "LOCAL_LLM=0") in service
    assert "-DGGML_NATIVE=OFF" in runs
    assert "-DGGML_NATIVE=OFF" in bootstrap
    assert "hunspell-he" in runs


def test_dockerfile_serves_built_web_app() -> None:
    named = stages(DOCKERFILE)
    web_workdir = next(a for k, a in named["web"] if k == "WORKDIR")
    service = named["service"]
    workdir = next(a for k, a in service if k == "WORKDIR")
    copies = [a.split() for k, a in service if k == "COPY" and "--from=web" in a]
    assert len(copies) == 1
    _, source, destination = copies[0]
    assert source.rstrip("/") == f"{web_workdir}/web/out"
    web_dir = env_values(service)["TORAH_STUDY_WEB_DIR"]
    assert destination.rstrip("/") == web_dir
    # The editable install's default folder is the same one, web/out of the
    # checkout in WORKDIR.
    assert web.CHECKOUT == ROOT / "web" / "out"
    assert web_dir == f"{workdir}/web/out"


def test_dockerfile_runs_as_non_root() -> None:
    service = stages(DOCKERFILE)["service"]
    users = [arguments for keyword, arguments in service if keyword == "USER"]
    assert users, "the service stage sets no USER"
    assert users[-1] not in ("root", "0", "0:0")
    runs = " ".join(arguments for keyword, arguments in service if keyword == "RUN")
    assert re.search(rf"useradd\b.*\b{re.escape(users[-1])}\b", runs)
    # The user owns the data volume.
    data_dir = env_values(service)["TORAH_STUDY_DATA_DIR"]
    assert f"chown {users[-1]}:{users[-1]} {data_dir}" in runs
    volumes = [arguments for keyword, arguments in service if keyword == "VOLUME"]
    assert volumes == [f'["{data_dir}"]']


def test_dockerfile_exposes_serving_port() -> None:
    service = stages(DOCKERFILE)["service"]
    values = env_values(service)
    assert values["TORAH_STUDY_HOST"] == "0.0.0.0"
    exposed = [arguments for keyword, arguments in service if keyword == "EXPOSE"]
    assert exposed == [values["TORAH_STUDY_PORT"]]
    commands = [arguments for keyword, arguments in service if keyword == "CMD"]
    assert commands == ['["torah-study", "serve"]']


def test_healthcheck_uses_real_route(tmp_path: Path) -> None:
    service = stages(DOCKERFILE)["service"]
    checks = [arguments for keyword, arguments in service if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "urllib.request.urlopen" in checks[0]
    assert "curl" not in checks[0]
    match = re.search(r"'(/[^']*)', timeout", checks[0])
    assert match, checks[0]
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    paths = {getattr(route, "path", None) for route in create_app(settings).routes}
    assert match.group(1) in paths


def test_settings_names_are_real() -> None:
    fields = {f"TORAH_STUDY_{name.upper()}" for name in Settings.model_fields}
    for path in (DOCKERFILE, COMPOSE, ENV_EXAMPLE):
        names = setting_names(path.read_text(encoding="utf-8"))
        assert names, path
        assert names <= fields, f"{path.name}: {sorted(names - fields)}"


def test_dockerignore_excludes_local_state() -> None:
    lines = set((ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines())
    for entry in (".git", ".venv", "**/node_modules", "data", "web/out", ".env"):
        assert entry in lines


# The compose deployment.


def test_env_example_has_no_secret() -> None:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    assert "TORAH_STUDY_JWT_SECRET" in values
    for name, value in values.items():
        if re.search(r"SECRET|PASSWORD|API_KEY", name):
            assert value == "", f"{name} has a value in the example"


def test_compose_uses_postgres_everywhere() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    app = compose["services"]["app"]
    database = compose["services"]["db"]
    environment = app["environment"]
    assert environment["TORAH_STUDY_RETRIEVAL_BACKEND"] == "postgres"
    assert environment["TORAH_STUDY_DATABASE_URL"].startswith("postgresql://")
    assert (
        environment["TORAH_STUDY_RETRIEVAL_DATABASE_URL"]
        == environment["TORAH_STUDY_DATABASE_URL"]
    )
    assert "@db:5432/" in environment["TORAH_STUDY_DATABASE_URL"]
    assert environment["TORAH_STUDY_ENVIRONMENT"] == "production"
    assert app["env_file"] == ".env"
    assert app["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(database["healthcheck"]["test"])
    assert database["build"] == "deploy/postgres"
    # Both services keep their data in named volumes.
    assert set(compose["volumes"]) == {"postgres-data", "app-data"}
    assert "postgres-data:/var/lib/postgresql/data" in database["volumes"]
    data_dir = env_values(stages(DOCKERFILE)["service"])["TORAH_STUDY_DATA_DIR"]
    assert f"app-data:{data_dir}" in app["volumes"]


def test_postgres_image_has_search_files(tmp_path: Path) -> None:
    dockerfile = (POSTGRES_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM pgvector/pgvector:pg${PG_MAJOR}" in dockerfile
    assert "ARG PG_MAJOR=17" in dockerfile
    assert "hunspell-he" in dockerfile
    folder = "/usr/share/postgresql/${PG_MAJOR}/tsearch_data"
    for source, target in pg_search.HUNSPELL_FILES.items():
        assert f'cp /usr/share/hunspell/{source} "{folder}/{target}"' in dockerfile
    rules = f"{pg_search.RULES_NAME}.rules"
    assert f"COPY {rules} {folder}/{rules}" in dockerfile
    shipped = (POSTGRES_DIR / rules).read_text(encoding="utf-8")
    assert shipped == pg_search.niqqud_rules()
    # The same file names as install_dictionary_files writes.
    (tmp_path / "tsearch_data").mkdir()
    hunspell = tmp_path / "hunspell"
    hunspell.mkdir()
    for source in pg_search.HUNSPELL_FILES:
        (hunspell / source).write_text("stub\n", encoding="utf-8")
    pg_search.install_dictionary_files(tmp_path, hunspell)
    written = {path.name for path in (tmp_path / "tsearch_data").iterdir()}
    assert written == {rules, *pg_search.HUNSPELL_FILES.values()}


def compose_config(folder: Path) -> subprocess.CompletedProcess[str]:
    executable = find_tool("docker-compose", "compose")
    return subprocess.run(
        [executable, "-f", "docker-compose.yml", "config", "-q"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture()
def compose_folder(tmp_path: Path) -> Path:
    """Copy the files compose reads into a folder with no .env yet."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    shutil.copy(COMPOSE, folder)
    shutil.copy(DOCKERFILE, folder)
    shutil.copytree(ROOT / "deploy", folder / "deploy")
    return folder


def test_compose_stop_waits_past_grace() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    period = re.fullmatch(r"(\d+)s", compose["services"]["app"]["stop_grace_period"])
    assert period
    grace = Settings.model_fields["shutdown_grace_seconds"].default
    assert int(period.group(1)) > uvicorn_grace_seconds(grace)


def test_compose_config_is_valid(compose_folder: Path) -> None:
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    filled = example.replace("POSTGRES_PASSWORD=\n", "POSTGRES_PASSWORD=test1234\n")
    assert filled != example
    (compose_folder / ".env").write_text(filled, encoding="utf-8")
    result = compose_config(compose_folder)
    assert result.returncode == 0, result.stderr


def test_compose_requires_postgres_password(compose_folder: Path) -> None:
    shutil.copy(ENV_EXAMPLE, compose_folder / ".env")
    result = compose_config(compose_folder)
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


# The nginx sample.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nginx_main_config(folder: Path, site: Path) -> Path:
    """Write a main nginx.conf that includes ``site``, with every path in ``folder``.

    It compresses event streams for the whole server, as a deployer's http
    block may, so the site must turn off gzip or proxy buffering for the
    stream to flow.
    """
    temporary = " ".join(
        f"{kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = folder / "nginx.conf"
    config.write_text(
        f"pid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'};\n"
        "events {}\n"
        "http {\n"
        "    access_log off;\n"
        "    gzip on;\n"
        "    gzip_types text/event-stream;\n"
        "    gzip_min_length 1;\n"
        f"    {temporary}\n"
        f"    include {site};\n"
        "}\n",
        encoding="utf-8",
    )
    return config


def test_nginx_sample_is_valid(tmp_path: Path) -> None:
    nginx = find_tool("nginx", "nginx")
    config = nginx_main_config(tmp_path, NGINX_SITE)
    result = subprocess.run(
        [nginx, "-t", "-c", str(config), "-p", str(tmp_path), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_nginx_timeout_exceeds_keepalive() -> None:
    site = NGINX_SITE.read_text(encoding="utf-8")
    timeout = re.search(r"proxy_read_timeout (\d+)s;", site)
    assert timeout
    keepalive = Settings.model_fields["keepalive_seconds"].default
    assert int(timeout.group(1)) > keepalive
    for directive in (
        # NOTE: with nginx 1.22 the streaming test below fails only when
        # both `proxy_buffering off` and `gzip off` are missing, because
        # either one alone let its small events through. This check covers
        # each line.
        "proxy_buffering off;",
        "proxy_cache off;",
        "gzip off;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ):
        assert directive in site


def event_app(release: threading.Event) -> Starlette:
    """Build an app that streams one event, waits for ``release``, then another.

    It sends no X-Accel-Buffering header, so only the proxy configuration
    decides whether nginx buffers the stream.
    """

    async def events() -> AsyncIterator[str]:
        yield "data: first\n\n"
        deadline = time.monotonic() + 10
        while not release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        yield "data: second\n\n"

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(events(), media_type="text/event-stream")

    async def headers(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "headers": dict(request.headers),
                "http_version": request.scope["http_version"],
            }
        )

    return Starlette(routes=[Route("/stream", stream), Route("/headers", headers)])


@pytest.fixture()
def proxied(tmp_path: Path) -> Iterator[tuple[str, threading.Event]]:
    """Start the event app and nginx with the sample site in front of it."""
    nginx = find_tool("nginx", "nginx")
    release = threading.Event()
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream_port = upstream.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(event_app(release), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [upstream]})
    thread.start()

    port = free_port()
    site_text = NGINX_SITE.read_text(encoding="utf-8")
    site_text = site_text.replace("listen 80;", f"listen 127.0.0.1:{port};")
    site_text = site_text.replace("listen [::]:80;", "")
    site_text = site_text.replace(
        "server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};"
    )
    site = tmp_path / "site.conf"
    site.write_text(site_text, encoding="utf-8")
    config = nginx_main_config(tmp_path, site)
    process = subprocess.Popen(
        [
            nginx,
            "-c",
            str(config),
            "-p",
            str(tmp_path),
            "-e",
            "stderr",
            "-g",
            "daemon off;",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nginx did not start: {process.communicate()[1]}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", release
    finally:
        release.set()
        process.terminate()
        process.communicate(timeout=10)
        server.should_exit = True
        thread.join(timeout=10)
        upstream.close()


def test_nginx_streams_events_one_by_one(
    proxied: tuple[str, threading.Event],
) -> None:
    base, release = proxied
    received = []
    with httpx.stream("GET", f"{base}/stream", timeout=5) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line:
                continue
            received.append(line)
            if line == "data: first":
                # The first event arrived while the app still waits to send
                # the second one: nginx passed it on without buffering.
                assert not release.is_set()
                release.set()
    assert received == ["data: first", "data: second"]


def test_nginx_forwards_client_headers(
    proxied: tuple[str, threading.Event],
) -> None:
    base, _ = proxied
    # A client that names another address must not reach the service as it.
    spoofed = {"X-Forwarded-For": "10.9.9.9, 203.0.113.7"}
    reply = httpx.get(f"{base}/headers", headers=spoofed, timeout=5)
    assert reply.status_code == 200
    seen = reply.json()
    assert seen["http_version"] == "1.1"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-real-ip"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "http"
    assert seen["headers"]["host"] == "127.0.0.1"
    assert "connection" not in seen["headers"]
