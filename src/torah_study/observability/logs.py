"""Log formatting: plain text or one JSON object per line, with secrets masked.

Every record carries the ``request_id`` and ``conversation_id`` of the
request it was logged for. The ASGI middleware (``observability.middleware``)
and the conversation routes set them as context variables.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
import traceback
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
conversation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "conversation_id", default=None
)

REDACTED = "[REDACTED]"

# Values that look like credentials wherever they appear in a log line:
# bearer tokens, JWTs, passwords in URLs, and key=value or "key": "value"
# pairs whose key names a secret.
_PATTERNS = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(r"\b(Basic)\s+[A-Za-z0-9+/]{12,}={0,2}"), rf"\1 {REDACTED}"),
    (
        re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
        REDACTED,
    ),
    (re.compile(r"(://[^/\s:@]+):[^/\s@]+@"), rf"\1:{REDACTED}@"),
    (
        re.compile(
            r"(?i)\b((?:[a-z]+_)?(?:password|passwd|secret|token|api_?key|"
            r"authorization))(['\"]?\s*[:=]\s*)"
            r"(\"[^\"]*\"|'[^']*'|[^\s'\"&,;}]+)"
        ),
        rf"\1\2{REDACTED}",
    ),
)
# Secrets known by value (the JWT key, API keys), replaced wherever they occur.
_known_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# Shorter values are too likely to occur in ordinary text.
MIN_SECRET_LENGTH = 8


def add_secret(value: str | None) -> None:
    """Mask ``value`` in every later log line."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _secrets_lock:
            _known_secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with known secrets and credential-shaped values masked."""
    for secret in tuple(_known_secrets):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Return the request of a uvicorn access record as separate fields.

    uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with the client address,
    method, path with query, HTTP version and status (as of uvicorn 0.55).
    """
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple):
        return {}
    if len(args) != 5:
        return {}
    client, method, path, version, status = args
    return {
        "http": {
            "client": str(client),
            "method": str(method),
            "path": redact(str(path)),
            "version": str(version),
            "status": status,
        }
    }


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        ids = {
            "request_id": request_id.get(),
            "conversation_id": conversation_id.get(),
        }
        entry.update({name: value for name, value in ids.items() if value})
        entry.update(_access_fields(record))
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info))
            entry["exception"] = redact(text)
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The plain format, with the request id appended and secrets masked."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        current = request_id.get()
        if current:
            first, newline, rest = text.partition("\n")
            text = f"{first} [request_id={current}]{newline}{rest}"
        return redact(text)


# Marks the handler configure_logging installed, so a later call replaces it.
_MARK = "_torah_study_handler"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current ``sys.stderr``, even after it was replaced."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(
    log_format: LogFormat,
    level: int = logging.WARNING,
    stream: Any = None,
    force: bool = True,
) -> logging.Handler | None:
    """Give the root logger one handler that writes in ``log_format``.

    The handler writes to ``stream``, or to whatever ``sys.stderr`` is at the
    time of each record. It replaces the handler of an earlier call. Without
    ``force``, a root logger that already has other handlers (a test runner's,
    an embedding application's) is left alone, as ``logging.basicConfig``
    does, and None is returned. The uvicorn loggers lose their own handlers
    and propagate to the root, so their lines, the access log too, share the
    format.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, _MARK, False)]
    if not force and len(ours) < len(root.handlers):
        return None
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    setattr(handler, _MARK, True)
    for old in ours:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler


def add_secrets_of(settings: Any) -> None:
    """Mask every secret setting and the passwords of database URLs in logs."""
    from pydantic import SecretStr
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    for _, value in settings:
        if isinstance(value, SecretStr):
            add_secret(value.get_secret_value())
    for url in (settings.database_url, settings.retrieval_database_url):
        if not url:
            continue
        try:
            add_secret(make_url(url).password)
        except ArgumentError:
            continue
