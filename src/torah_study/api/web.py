"""The web app: static files built from ``web/`` and served at ``/``.

The build is a static export (one HTML page plus hashed assets under
``/_next``), so the service needs no Node.js at run time. Routes are added
after the API's, so an API path always wins over a file of the same name.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

# Default build folder when none is configured: the build output of the
# checkout this package is installed from.
CHECKOUT = Path(__file__).resolve().parents[3] / "web" / "out"

# Next.js writes inline scripts that hydrate the page. They are allowed by
# their SHA-256 hashes, read from the built page, so no other inline script
# (an injected one) can run. Inline styles stay allowed, because the app
# sets style attributes at run time: Chromium blocks some without them.
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def page_policy(
    html: str,
    *,
    scripts: Sequence[str] = (),
    styles: Sequence[str] = (),
    fonts: Sequence[str] = (),
    images: Sequence[str] = (),
    workers: Sequence[str] = (),
) -> str:
    """Build the Content-Security-Policy for a page with these inline scripts.

    The sequences add sources beyond the service's own origin.
    """
    hashes = [
        "'sha256-"
        + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        + "'"
        for body in INLINE_SCRIPT.findall(html)
    ]
    directives = [
        "default-src 'self'",
        " ".join(("script-src 'self'", *scripts, *hashes)),
        " ".join(("style-src 'self' 'unsafe-inline'", *styles)),
        " ".join(("img-src 'self' data:", *images)),
        " ".join(("font-src 'self' data:", *fonts)),
        "connect-src 'self'",
    ]
    if workers:
        directives.append(" ".join(("worker-src 'self'", *workers)))
    directives += [
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
TOP_LEVEL_FILES = {".svg", ".ico", ".png", ".txt", ".webmanifest"}

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Torah Study</title></head>
<body style="font-family: sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>Torah Study</h1>
<p>The web app has not been built. Build it with <code>scripts/build-web.sh</code>
(Node.js 20 and npm), or set <code>TORAH_STUDY_WEB_DIR</code> to a built copy,
then restart the service.</p>
<p>The HTTP API is running: see <a href="/docs">/docs</a>.</p>
</body></html>
"""


class LongCache:
    """Mark responses as cacheable for a year: asset names carry a content hash."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = "public, max-age=31536000, immutable"
            await send(message)

        await self.app(scope, receive, send_cached)


def find_web_dir(configured: Path | None) -> Path | None:
    """Find the folder that contains the built ``index.html``, or return None."""
    folder = configured or CHECKOUT
    if (folder / "index.html").is_file():
        return folder.resolve()
    if configured:
        logger.warning("No index.html in TORAH_STUDY_WEB_DIR=%s", configured)
    return None


def add_web_app(app: FastAPI, folder: Path | None) -> None:
    """Serve the built app at ``/`` and its assets; explain when it is missing."""
    if folder is None:
        logger.warning("The web app is not built; / explains how to build it")

        @app.get("/", include_in_schema=False)
        def not_built() -> Response:
            headers = {**PAGE_HEADERS, "Content-Security-Policy": page_policy("")}
            return HTMLResponse(NOT_BUILT, status_code=503, headers=headers)

        return

    index = folder / "index.html"
    logger.info("Serving the web app from %s", folder)

    # Read once: a rebuild while the service runs needs a restart, because
    # the hashed asset names change too.
    html = index.read_text(encoding="utf-8")
    headers = {**PAGE_HEADERS, "Content-Security-Policy": page_policy(html)}

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return HTMLResponse(html, headers=headers)

    assets = folder / "_next"
    if assets.is_dir():
        files = GZipMiddleware(StaticFiles(directory=assets), minimum_size=1024)
        app.mount("/_next", LongCache(files), name="web-assets")

    @app.get("/{name}", include_in_schema=False)
    def top_level_file(name: str) -> Response:
        path = folder / name
        if (
            path.suffix not in TOP_LEVEL_FILES
            or path.parent != folder
            or not path.is_file()
        ):
            raise HTTPException(status_code=404, detail="Not Found")
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})
