"""Registration, sign-in with optional email codes, token refresh and logout."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from torah_study.accounts.mail import Mailer, MailError
from torah_study.accounts.passwords import (
    burn_verification_time,
    hash_password,
    normalise_password,
    password_problem,
    verify_password,
)
from torah_study.accounts.ratelimit import RateLimited, RateLimiter
from torah_study.accounts.tokens import Claims, TokenCodec, TokenError
from torah_study.config import Settings
from torah_study.db.models import (
    AuthSession,
    EmailCode,
    RateEvent,
    RefreshToken,
    User,
)

logger = logging.getLogger(__name__)

_ID = re.compile(r"[0-9a-f]{32}")

BAD_CREDENTIALS = "Incorrect email or password."
BAD_CODE = "The code is wrong or has expired."
CODE_GONE = "This code has expired or was tried too often; sign in again for a new one."


class AuthError(Exception):
    """A failure the API reports with ``status`` and ``detail``."""

    def __init__(
        self, status: int, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


@dataclass(frozen=True)
class Client:
    """The caller: its address for rate limits, its user agent for the session."""

    address: str
    user_agent: str = ""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User


@dataclass(frozen=True)
class Challenge:
    """An email code was sent; tokens follow once the code is confirmed."""

    challenge_id: str
    expires_in: int
    email: str


def normalise_email(email: str) -> tuple[str, str]:
    """Return the normalised address and its lower-cased key, or raise ValueError."""
    # NFKC first, so that fullwidth or other compatibility forms of the same
    # letters cannot make a second account for one address.
    email = unicodedata.normalize("NFKC", email).strip()
    try:
        result = validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(str(error)) from error
    return result.normalized, result.normalized.lower()


class AccountService:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        codec: TokenCodec,
        mailer: Mailer | None,
        read_sessions: sessionmaker[Session] | None = None,
    ) -> None:
        if settings.mfa_enabled and mailer is None:
            raise ValueError("Email codes are on but no mail server is configured.")
        self.settings = settings
        self.sessions = sessions
        self.read_sessions = read_sessions or sessions
        self.codec = codec
        self.mailer = mailer
        self.limiter = RateLimiter(timedelta(seconds=settings.rate_window_seconds))
        self._code_key = hashlib.sha256(b"email-code:" + codec.secret_bytes()).digest()

    # Registration and sign-in.

    # NOTE: without email codes nothing proves that the registering person
    # owns the address.
    def register(self, email: str, password: str, client: Client) -> Tokens | Challenge:
        address, key = normalise_email(email)
        password = normalise_password(password)
        problem = password_problem(password, address, self.settings.password_min_length)
        if problem:
            raise AuthError(422, problem)
        with self.sessions.begin() as db:
            self._reserve(
                db,
                (
                    f"register:address:{client.address}",
                    self.settings.register_limit_per_address,
                ),
            )
        hashed = hash_password(password)
        with self.sessions.begin() as db:
            if db.scalar(select(User.id).where(User.email_key == key)) is not None:
                raise AuthError(409, "An account with this email already exists.")
            user = User(email=address, email_key=key, password_hash=hashed)
            db.add(user)
            try:
                db.flush()
            except IntegrityError as error:
                raise AuthError(
                    409, "An account with this email already exists."
                ) from error
            if not self.settings.mfa_enabled:
                return self._issue(db, user, client)
            code, challenge = self._new_code(db, user, "register")
        try:
            self._mail_code(user.email, code)
        except AuthError:
            # Without the code the account could never be used: remove it.
            with self.sessions.begin() as db:
                db.execute(delete(User).where(User.id == user.id))
            raise
        return challenge

    def login(self, email: str, password: str, client: Client) -> Tokens | Challenge:
        try:
            _, key = normalise_email(email)
        except ValueError:
            key = email.strip().lower()[:320]
        password = normalise_password(password)
        account_key = f"login:account:{key}"
        # Counted before the password is checked, so parallel guesses cannot
        # all get past the limit; a successful sign-in takes its count back.
        with self.sessions.begin() as db:
            attempts = self._reserve(
                db,
                (account_key, self.settings.login_limit_per_account),
                (
                    f"login:address:{client.address}",
                    self.settings.login_limit_per_address,
                ),
            )
            user = db.scalar(select(User).where(User.email_key == key))
        # The slow hash check runs outside any transaction.
        if user is None:
            burn_verification_time(password)
            raise AuthError(401, BAD_CREDENTIALS, {"WWW-Authenticate": "Bearer"})
        if not verify_password(password, user.password_hash):
            raise AuthError(401, BAD_CREDENTIALS, {"WWW-Authenticate": "Bearer"})
        with self.sessions.begin() as db:
            self.limiter.release(db, [event.id for event in attempts])
            self.limiter.clear(db, account_key)
            if not self.settings.mfa_enabled:
                return self._issue(db, user, client)
            self._reserve(
                db,
                (f"code:sent:{key}", self.settings.codes_per_account),
            )
            code, challenge = self._new_code(db, user, "login")
        self._mail_code(user.email, code)
        return challenge

    def verify_code(self, challenge_id: str, code: str, client: Client) -> Tokens:
        if not _ID.fullmatch(challenge_id):
            raise AuthError(401, BAD_CODE)
        address_key = f"code:address:{client.address}"
        now = datetime.now(UTC)
        with self.sessions.begin() as db:
            attempts = self._reserve(
                db, (address_key, self.settings.code_limit_per_address)
            )
            row = self._match_code(db, challenge_id, code, reset=False, now=now)
            if isinstance(row, AuthError):
                failure = row
            else:
                self.limiter.release(db, [event.id for event in attempts])
                row.consumed_at = now
                user = db.get(User, row.user_id)
                assert user is not None
                user.verified = True
                return self._issue(db, user, client)
        # Raised after the block so the counted attempt is committed.
        raise failure

    # Password reset.

    def request_reset(self, email: str, client: Client) -> Challenge:
        """Mail a reset code when the address has an account.

        The reply is the same either way, so it does not reveal which
        addresses have accounts: an unknown address gets a challenge id that
        no code will ever match.
        """
        if self.mailer is None:
            raise AuthError(503, "Password reset needs a mail server (SMTP_HOST).")
        address, key = normalise_email(email)
        minutes = self.settings.mfa_code_minutes
        with self.sessions.begin() as db:
            self._reserve(
                db,
                (
                    f"reset:address:{client.address}",
                    self.settings.code_limit_per_address,
                ),
                (f"code:sent:{key}", self.settings.codes_per_account),
            )
            user = db.scalar(select(User).where(User.email_key == key))
            if user is None:
                return Challenge(secrets.token_hex(16), minutes * 60, address)
            code, challenge = self._new_code(db, user, "reset")
        self._mail_code(user.email, code, reset=True)
        return challenge

    def reset_password(
        self, challenge_id: str, code: str, new_password: str, client: Client
    ) -> Tokens:
        """Set a new password with a mailed reset code; every sign-in ends."""
        if not _ID.fullmatch(challenge_id):
            raise AuthError(401, BAD_CODE)
        new = normalise_password(new_password)
        # Hashed before the transaction, which must stay short.
        hashed = hash_password(new)
        address_key = f"code:address:{client.address}"
        now = datetime.now(UTC)
        with self.sessions.begin() as db:
            attempts = self._reserve(
                db, (address_key, self.settings.code_limit_per_address)
            )
            row = self._match_code(db, challenge_id, code, reset=True, now=now)
            if isinstance(row, AuthError):
                failure = row
            else:
                user = db.get(User, row.user_id, with_for_update=True)
                assert user is not None
                problem = password_problem(
                    new, user.email, self.settings.password_min_length
                )
                if problem:
                    # Rolls the whole transaction back: the code still works.
                    raise AuthError(422, problem)
                self.limiter.release(db, [event.id for event in attempts])
                row.consumed_at = now
                user.password_hash = hashed
                user.password_changed_at = now
                user.verified = True
                db.execute(
                    update(AuthSession)
                    .where(
                        AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None)
                    )
                    .values(revoked_at=now, revoked_reason="password-reset")
                )
                return self._issue(db, user, client)
        raise failure

    # Tokens.

    def refresh(self, token: str, client: Client) -> Tokens:
        try:
            claims = self.codec.decode(token, "refresh")
        except TokenError as error:
            raise AuthError(401, str(error)) from error
        now = datetime.now(UTC)
        with self.sessions.begin() as db:
            row = db.get(RefreshToken, claims.jti, with_for_update=True)
            signin = db.get(AuthSession, claims.session_id)
            if row is None or signin is None or row.session_id != signin.id:
                raise AuthError(401, "The refresh token is not valid.")
            if signin.revoked_at is not None or signin.expires_at <= now:
                raise AuthError(401, "This sign-in has ended; sign in again.")
            if row.used_at is not None:
                # An old refresh token came back: someone may have copied it.
                signin.revoked_at = now
                signin.revoked_reason = "refresh-reuse"
                failure = AuthError(401, "This sign-in has ended; sign in again.")
            else:
                row.used_at = now
                user = db.get(User, claims.user_id)
                if user is None:
                    raise AuthError(401, "The account no longer exists.")
                return self._tokens(db, user, signin)
        raise failure

    def authenticate(self, token: str) -> tuple[User, Claims]:
        """Return the user of a valid access token or raise AuthError 401."""
        try:
            claims = self.codec.decode(token, "access")
        except TokenError as error:
            raise AuthError(401, str(error), {"WWW-Authenticate": "Bearer"}) from error
        with self.read_sessions() as db:
            row = db.execute(
                select(User, AuthSession)
                .join(AuthSession, AuthSession.user_id == User.id)
                .where(AuthSession.id == claims.session_id, User.id == claims.user_id)
            ).one_or_none()
        if row is None:
            raise AuthError(
                401, "The token is not valid.", {"WWW-Authenticate": "Bearer"}
            )
        user, signin = row
        if signin.revoked_at is not None or signin.expires_at <= datetime.now(UTC):
            raise AuthError(
                401,
                "This sign-in has ended; sign in again.",
                {"WWW-Authenticate": "Bearer"},
            )
        return user, claims

    def logout(self, claims: Claims) -> None:
        with self.sessions.begin() as db:
            db.execute(
                update(AuthSession)
                .where(
                    AuthSession.id == claims.session_id,
                    AuthSession.revoked_at.is_(None),
                )
                .values(revoked_at=datetime.now(UTC), revoked_reason="logout")
            )

    def change_password(
        self, user_id: str, current: str, new: str, client: Client
    ) -> Tokens:
        """Change the password, end every sign-in, and start a new one here."""
        current = normalise_password(current)
        new = normalise_password(new)
        account_key = f"password:account:{user_id}"
        with self.sessions.begin() as db:
            attempts = self._reserve(
                db, (account_key, self.settings.login_limit_per_account)
            )
            user = db.get(User, user_id)
        if user is None:
            raise AuthError(401, "The account no longer exists.")
        if not verify_password(current, user.password_hash):
            raise AuthError(403, "The current password is wrong.")
        problem = password_problem(new, user.email, self.settings.password_min_length)
        if problem:
            raise AuthError(422, problem)
        if new == current:
            raise AuthError(422, "The new password is the same as the old one.")
        hashed = hash_password(new)
        now = datetime.now(UTC)
        with self.sessions.begin() as db:
            self.limiter.release(db, [event.id for event in attempts])
            user = db.get(User, user_id, with_for_update=True)
            if user is None:
                raise AuthError(401, "The account no longer exists.")
            user.password_hash = hashed
            user.password_changed_at = now
            db.execute(
                update(AuthSession)
                .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason="password-change")
            )
            return self._issue(db, user, client)

    # Helpers.

    def _reserve(self, db: Session, *limits: tuple[str, int]) -> list[RateEvent]:
        try:
            events = self.limiter.reserve(db, *limits)
        except RateLimited as error:
            raise AuthError(
                429,
                "Too many attempts; wait and try again.",
                {"Retry-After": str(error.retry_after)},
            ) from error
        db.flush()
        return events

    def _issue(self, db: Session, user: User, client: Client) -> Tokens:
        now = datetime.now(UTC)
        signin = AuthSession(
            user_id=user.id,
            created_at=now,
            expires_at=now + self.codec.refresh_ttl,
            client_address=client.address[:64],
            user_agent=client.user_agent[:300] or None,
        )
        db.add(signin)
        db.flush()
        return self._tokens(db, user, signin)

    def _tokens(self, db: Session, user: User, signin: AuthSession) -> Tokens:
        access, _ = self.codec.encode("access", user.id, signin.id)
        refresh, claims = self.codec.encode("refresh", user.id, signin.id)
        # A refresh token never outlives its sign-in session.
        expires = min(claims.expires_at, signin.expires_at)
        db.add(
            RefreshToken(
                jti=claims.jti,
                session_id=signin.id,
                created_at=claims.issued_at,
                expires_at=expires,
            )
        )
        return Tokens(
            access_token=access,
            refresh_token=refresh,
            expires_in=int(self.codec.access_ttl.total_seconds()),
            user=user,
        )

    def _match_code(
        self, db: Session, challenge_id: str, code: str, *, reset: bool, now: datetime
    ) -> EmailCode | AuthError:
        """Return the unused code row that ``code`` matches, or the error to raise.

        A wrong code counts against the row's attempts, so the caller commits
        before it raises the error. Reset codes work only for a reset.
        """
        row = db.get(EmailCode, challenge_id, with_for_update=True)
        if row is None:
            return AuthError(401, BAD_CODE)
        usable = (
            (row.purpose == "reset") == reset
            and row.consumed_at is None
            and row.expires_at > now
            and row.attempts < self.settings.mfa_max_attempts
        )
        if not usable:
            return AuthError(401, CODE_GONE)
        if not hmac.compare_digest(row.code_hash, self._hash_code(code)):
            row.attempts += 1
            left = self.settings.mfa_max_attempts - row.attempts
            return AuthError(401, BAD_CODE if left > 0 else CODE_GONE)
        return row

    def _hash_code(self, code: str) -> str:
        digits = "".join(ch for ch in code if not ch.isspace())
        return hmac.new(self._code_key, digits.encode(), hashlib.sha256).hexdigest()

    def _new_code(self, db: Session, user: User, purpose: str) -> tuple[str, Challenge]:
        """Store a new code for ``user``; earlier unused codes stop working."""
        now = datetime.now(UTC)
        db.execute(
            update(EmailCode)
            .where(EmailCode.user_id == user.id, EmailCode.consumed_at.is_(None))
            .values(consumed_at=now)
        )
        code = f"{secrets.randbelow(1_000_000):06d}"
        minutes = self.settings.mfa_code_minutes
        row = EmailCode(
            user_id=user.id,
            purpose=purpose,
            code_hash=self._hash_code(code),
            created_at=now,
            expires_at=now + timedelta(minutes=minutes),
        )
        db.add(row)
        db.flush()
        return code, Challenge(row.id, minutes * 60, user.email)

    def _mail_code(self, address: str, code: str, reset: bool = False) -> None:
        """Send the code, outside any transaction: mail servers can be slow."""
        assert self.mailer is not None
        minutes = self.settings.mfa_code_minutes
        if reset:
            subject = f"Your Torah Study password reset code: {code}"
            body = (
                f"Your Torah Study password reset code is {code}.\n\n"
                f"It expires in {minutes} minutes. If you did not ask to reset "
                "your password, ignore this email; your password is unchanged."
            )
        else:
            subject = f"Your Torah Study code: {code}"
            body = (
                f"Your Torah Study code is {code}.\n\n"
                f"It expires in {minutes} minutes. If you did not try to sign in, "
                "ignore this email; your password may be known to someone else."
            )
        try:
            self.mailer.send(address, subject, body)
        except MailError as error:
            raise AuthError(503, str(error)) from error
