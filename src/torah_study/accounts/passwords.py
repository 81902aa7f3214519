"""Password hashing (argon2id through pwdlib) and the strength rules."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MAX_PASSWORD_CHARS = 1024

# A short list of passwords that appear first in every leaked-password list.
COMMON = frozenset(
    {
        "password",
        "password1",
        "password12",
        "password123",
        "passw0rd",
        "123456789",
        "1234567890",
        "12345678910",
        "0123456789",
        "qwertyuiop",
        "1q2w3e4r5t",
        "iloveyou12",
        "letmein123",
        "welcome123",
        "administrator",
        "changeme123",
        "shalom1234",
        "torahstudy",
        "sefaria123",
    }
)

_hasher = PasswordHash((Argon2Hasher(),))


def normalise_password(password: str) -> str:
    """Bring a password to NFKC, so the same text typed on another keyboard
    (Hebrew with niqqud, say) composed differently still matches."""
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    try:
        return _hasher.verify(password, hashed)
    except Exception:
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("a password that belongs to nobody")


def burn_verification_time(password: str) -> None:
    """Spend the time of one hash check, for sign-ins with an unknown email.

    Without it a sign-in with a wrong email returns faster than one with a
    wrong password, which reveals which addresses have accounts.
    """
    verify_password(password, _dummy_hash())


def password_problem(password: str, email: str, min_length: int) -> str | None:
    """Return why ``password`` is too weak, or None when it is acceptable."""
    if len(password) < min_length:
        return f"The password must have at least {min_length} characters."
    if len(password) > MAX_PASSWORD_CHARS:
        return f"The password must have at most {MAX_PASSWORD_CHARS} characters."
    if not password.strip():
        return "The password must not be only spaces."
    if len(set(password)) < 4:
        return "The password repeats too few different characters."
    lowered = password.lower()
    if lowered in COMMON:
        return "That password is one of the most common passwords; choose another."
    local = email.split("@", 1)[0].lower()
    if lowered in (email.lower(), local):
        return "The password must not be the email address."
    return None
