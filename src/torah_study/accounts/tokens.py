"""Signed tokens (PyJWT, HS256): short-lived access tokens and refresh tokens.

Every token carries its own ``jti`` and the id of its sign-in session
(``sid``). The database records whether that session is still valid, so
logout and password changes revoke tokens before they expire.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt

from torah_study.config import Settings
from torah_study.observability.logs import add_secret

logger = logging.getLogger(__name__)

ALGORITHM = "HS256"
ISSUER = "torah-study"
MIN_SECRET_CHARS = 32
# A random key of 32 characters has far more; 32 times "a" has one.
MIN_DISTINCT_CHARS = 10
# Values that appear in examples and must never sign real tokens.
PLACEHOLDER_SECRETS = frozenset(
    {"change-me", "changeme", "secret", "jwt-secret", "your-secret-key", "dev"}
)

TokenKind = Literal["access", "refresh"]


class TokenError(Exception):
    """A token that is malformed, forged, expired or of the wrong kind."""


class SecretError(RuntimeError):
    """The JWT secret is missing or unsafe for the configured environment."""


@dataclass(frozen=True)
class Claims:
    user_id: str
    session_id: str
    jti: str
    kind: TokenKind
    issued_at: datetime
    expires_at: datetime


def resolve_secret(settings: Settings) -> str:
    """Return the signing key, refusing unsafe keys in production.

    In development without a configured key, a random one is created once
    and kept in the data folder, so tokens survive a restart.
    """
    configured = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    if configured:
        weak = (
            configured.lower() in PLACEHOLDER_SECRETS
            or len(configured.strip()) < MIN_SECRET_CHARS
            or len(set(configured)) < MIN_DISTINCT_CHARS
        )
        if weak and settings.environment == "production":
            raise SecretError(
                "TORAH_STUDY_JWT_SECRET is a placeholder, too repetitive, or "
                f"shorter than {MIN_SECRET_CHARS} characters; set a random value "
                "such as the output of `openssl rand -base64 48`."
            )
        if weak:
            logger.warning("The JWT secret is weak; never use it in production.")
        add_secret(configured)
        return configured
    if settings.environment == "production":
        raise SecretError(
            "TORAH_STUDY_JWT_SECRET is not set; production needs a random secret "
            f"of at least {MIN_SECRET_CHARS} characters."
        )
    secret = _development_secret(settings.data_dir / "jwt-secret")
    add_secret(secret)
    return secret


def _development_secret(path: Path) -> str:
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if len(existing) >= MIN_SECRET_CHARS:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    logger.info("Created a development JWT secret in %s", path)
    return value


class TokenCodec:
    def __init__(self, secret: str, access_ttl: timedelta, refresh_ttl: timedelta):
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def secret_bytes(self) -> bytes:
        return self._secret.encode()

    def encode(
        self,
        kind: TokenKind,
        user_id: str,
        session_id: str,
        jti: str | None = None,
        now: datetime | None = None,
    ) -> tuple[str, Claims]:
        now = now or datetime.now(UTC)
        ttl = self.access_ttl if kind == "access" else self.refresh_ttl
        claims = Claims(
            user_id=user_id,
            session_id=session_id,
            jti=jti or secrets.token_hex(16),
            kind=kind,
            issued_at=now,
            expires_at=now + ttl,
        )
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "sub": user_id,
            "sid": session_id,
            "jti": claims.jti,
            "typ": kind,
            "iat": int(now.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), claims

    def decode(self, token: str, kind: TokenKind) -> Claims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti", "sid", "typ"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenError("The token has expired.") from error
        except jwt.PyJWTError as error:
            raise TokenError("The token is not valid.") from error
        if payload.get("typ") != kind:
            raise TokenError(
                f"This is not {'an' if kind == 'access' else 'a'} {kind} token."
            )
        values = [payload.get(name) for name in ("sub", "sid", "jti")]
        if not all(isinstance(value, str) and value for value in values):
            raise TokenError("The token is not valid.")
        return Claims(
            user_id=payload["sub"],
            session_id=payload["sid"],
            jti=payload["jti"],
            kind=kind,
            issued_at=datetime.fromtimestamp(payload["iat"], UTC),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        )
