"""Serving the built web app: the page, its assets and its security policy."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from torah_study.api.web import add_web_app, find_web_dir

PAGE = (
    "<!doctype html><html><head>"
    '<script src="/_next/static/chunks/app.js" async=""></script>'
    "</head><body><script>self.__next_f.push([1])</script></body></html>"
)


def _build(folder: Path) -> Path:
    (folder / "_next" / "static" / "chunks").mkdir(parents=True)
    (folder / "index.html").write_text(PAGE, encoding="utf-8")
    (folder / "_next" / "static" / "chunks" / "app.js").write_text("1;")
    (folder / "icon.svg").write_text("<svg/>")
    (folder.parent / "secret.txt").write_text("not served")
    return folder


def _client(folder: Path | None) -> TestClient:
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    add_web_app(app, folder)
    return TestClient(app)


def test_page_allows_only_its_own_inline_scripts(tmp_path: Path) -> None:
    client = _client(_build(tmp_path / "out"))
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == PAGE
    digest = hashlib.sha256(b"self.__next_f.push([1])").digest()
    expected = "'sha256-" + base64.b64encode(digest).decode() + "'"
    policy = response.headers["content-security-policy"]
    assert f"script-src 'self' {expected};" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
    assert "frame-ancestors 'none'" in policy
    assert response.headers["cache-control"] == "no-cache"


def test_assets_and_top_level_files_are_served(tmp_path: Path) -> None:
    client = _client(_build(tmp_path / "out"))
    asset = client.get("/_next/static/chunks/app.js")
    assert asset.text == "1;"
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert client.get("/icon.svg").status_code == 200


def test_large_assets_are_compressed(tmp_path: Path) -> None:
    folder = _build(tmp_path / "out")
    script = "const text = 'the same words again';\n" * 200
    (folder / "_next" / "static" / "chunks" / "big.js").write_text(script)
    response = _client(folder).get(
        "/_next/static/chunks/big.js", headers={"Accept-Encoding": "gzip"}
    )
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) < len(script) / 10
    assert response.text == script


def test_api_routes_win_and_other_paths_are_404(tmp_path: Path) -> None:
    client = _client(_build(tmp_path / "out"))
    assert client.get("/health").json() == {"status": "ok"}
    for path in ("/missing.svg", "/index.html", "/secret.txt", "/..%2Fsecret.txt"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "not served" not in response.text


def test_missing_build_explains_how_to_build(tmp_path: Path) -> None:
    assert find_web_dir(tmp_path / "empty") is None
    response = _client(None).get("/")
    assert response.status_code == 503
    assert "scripts/build-web.sh" in response.text
    assert "/docs" in response.text


def test_configured_folder_is_found(tmp_path: Path) -> None:
    folder = _build(tmp_path / "out")
    assert find_web_dir(folder) == folder.resolve()
