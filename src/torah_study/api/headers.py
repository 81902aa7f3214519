"""Security headers on every response, and the API documentation pages."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from torah_study.api.web import page_policy

# A response that is not a page (JSON, server-sent events, files) loads
# nothing, so its policy allows nothing. The web page and the documentation
# pages set their own policy, which the middleware keeps.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"

# Features the web app does not use, turned off. The clipboard stays
# allowed, because the app's copy button writes to it.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), payment=(), usb=()"
)

HSTS = "max-age=31536000; includeSubDomains"

# FastAPI's documentation pages load their scripts and styles from this CDN
# (fastapi 0.165), and ReDoc its fonts from Google.
DOCS_SCRIPTS = ("https://cdn.jsdelivr.net",)
DOCS_STYLES = ("https://cdn.jsdelivr.net", "https://fonts.googleapis.com")
DOCS_FONTS = ("https://fonts.gstatic.com",)
DOCS_IMAGES = ("https://fastapi.tiangolo.com", "https://cdn.redoc.ly")


def security_headers(behind_https: bool) -> list[tuple[bytes, bytes]]:
    """List the headers that every response gets unless it sets its own."""
    headers = {
        "Content-Security-Policy": API_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Permissions-Policy": PERMISSIONS_POLICY,
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if behind_https:
        headers["Strict-Transport-Security"] = HSTS
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


class SecurityHeaders:
    """Middleware that adds the security headers to each response's start.

    It changes only the ``http.response.start`` message and passes the body
    through as it comes, so server-sent events are not buffered.
    """

    def __init__(self, app: ASGIApp, behind_https: bool = False) -> None:
        self.app = app
        self.headers = security_headers(behind_https)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    key = name.decode()
                    if key not in headers:
                        headers[key] = value.decode()
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc with a policy that lets their CDN assets load.

    The app must be created with ``docs_url=None`` and ``redoc_url=None``.
    """
    title = f"{app.title} API"
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _with_docs_policy(
            get_swagger_ui_html(openapi_url=openapi_url, title=title)
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _with_docs_policy(get_redoc_html(openapi_url=openapi_url, title=title))


def _with_docs_policy(response: HTMLResponse) -> HTMLResponse:
    # NOTE: checked against the HTML these pages contain, not in a browser,
    # because the tests have no network to load the CDN assets.
    html = bytes(response.body).decode()
    response.headers["Content-Security-Policy"] = page_policy(
        html,
        scripts=DOCS_SCRIPTS,
        styles=DOCS_STYLES,
        fonts=DOCS_FONTS,
        images=DOCS_IMAGES,
        workers=("blob:",),
    )
    return response
