"""Account routes and the dependency that guards every other route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from torah_study.accounts.service import AuthError, Challenge, Client, Tokens
from torah_study.accounts.tokens import Claims
from torah_study.api.schemas import (
    ChallengeResponse,
    CodeRequest,
    Credentials,
    PasswordChange,
    RefreshRequest,
    ResetConfirm,
    ResetRequest,
    TokenResponse,
    UserOut,
)
from torah_study.db.models import User
from torah_study.service import Accounts

bearer = HTTPBearer(auto_error=False, description="An access token from /auth/login")


def get_accounts(request: Request) -> Accounts:
    accounts: Accounts = request.app.state.accounts
    return accounts


AccountsDep = Annotated[Accounts, Depends(get_accounts)]


@dataclass(frozen=True)
class Identity:
    user: User
    claims: Claims


def http_error(error: AuthError) -> HTTPException:
    return HTTPException(error.status, error.detail, headers=error.headers or None)


async def current_identity(
    accounts: AccountsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Identity:
    """Return the signed-in user; 401 without a valid, unrevoked access token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            "Sign in first: this needs an access token.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        user, claims = await run_in_threadpool(
            accounts.auth.authenticate, credentials.credentials
        )
    except AuthError as error:
        raise http_error(error) from error
    return Identity(user, claims)


IdentityDep = Annotated[Identity, Depends(current_identity)]


def client_of(request: Request) -> Client:
    address = request.client.host if request.client else "unknown"
    return Client(address, request.headers.get("user-agent", ""))


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id, email=user.email, verified=user.verified, created_at=user.created_at
    )


def _reply(
    result: Tokens | Challenge, response: Response
) -> TokenResponse | ChallengeResponse:
    if isinstance(result, Challenge):
        response.status_code = 202
        return ChallengeResponse(
            challenge_id=result.challenge_id,
            expires_in=result.expires_in,
            detail=f"A 6-digit code was sent to {result.email}.",
        )
    return TokenResponse(
        access_token=result.access_token,
        refresh_token=result.refresh_token,
        expires_in=result.expires_in,
        user=user_out(result.user),
    )


router = APIRouter(tags=["accounts"])
NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "/auth/register",
    status_code=201,
    response_model=TokenResponse | ChallengeResponse,
    responses={202: {"model": ChallengeResponse}, 409: {}, 422: {}},
)
def register(
    body: Credentials, request: Request, response: Response, accounts: AccountsDep
) -> TokenResponse | ChallengeResponse:
    """Create an account; with email codes on, a code is mailed first (202)."""
    response.headers.update(NO_STORE)
    try:
        result = accounts.auth.register(body.email, body.password, client_of(request))
    except ValueError as error:
        raise HTTPException(422, str(error)) from error
    except AuthError as error:
        raise http_error(error) from error
    return _reply(result, response)


@router.post(
    "/auth/login",
    response_model=TokenResponse | ChallengeResponse,
    responses={202: {"model": ChallengeResponse}, 401: {}, 429: {}},
)
def login(
    body: Credentials, request: Request, response: Response, accounts: AccountsDep
) -> TokenResponse | ChallengeResponse:
    """Sign in with email and password; with email codes on, a code is mailed (202)."""
    response.headers.update(NO_STORE)
    try:
        result = accounts.auth.login(body.email, body.password, client_of(request))
    except AuthError as error:
        raise http_error(error) from error
    return _reply(result, response)


@router.post("/auth/verify", response_model=TokenResponse, responses={401: {}, 429: {}})
def verify(
    body: CodeRequest, request: Request, response: Response, accounts: AccountsDep
) -> TokenResponse | ChallengeResponse:
    """Confirm the emailed code and receive tokens."""
    response.headers.update(NO_STORE)
    try:
        result = accounts.auth.verify_code(
            body.challenge_id, body.code, client_of(request)
        )
    except AuthError as error:
        raise http_error(error) from error
    return _reply(result, response)


@router.post(
    "/auth/password/forgot",
    status_code=202,
    response_model=ChallengeResponse,
    responses={422: {}, 429: {}, 503: {}},
)
def forgot_password(
    body: ResetRequest, request: Request, accounts: AccountsDep
) -> ChallengeResponse:
    """Mail a reset code; the reply is the same whether the account exists."""
    try:
        challenge = accounts.auth.request_reset(body.email, client_of(request))
    except ValueError as error:
        raise HTTPException(422, str(error)) from error
    except AuthError as error:
        raise http_error(error) from error
    return ChallengeResponse(
        challenge_id=challenge.challenge_id,
        expires_in=challenge.expires_in,
        detail=(f"If {challenge.email} has an account, a 6-digit code was sent to it."),
    )


@router.post(
    "/auth/password/reset",
    response_model=TokenResponse,
    responses={401: {}, 422: {}, 429: {}},
)
def reset_password(
    body: ResetConfirm, request: Request, response: Response, accounts: AccountsDep
) -> TokenResponse | ChallengeResponse:
    """Set a new password with the mailed code; every other sign-in ends."""
    response.headers.update(NO_STORE)
    try:
        result = accounts.auth.reset_password(
            body.challenge_id, body.code, body.new_password, client_of(request)
        )
    except AuthError as error:
        raise http_error(error) from error
    return _reply(result, response)


@router.post("/auth/refresh", response_model=TokenResponse, responses={401: {}})
def refresh(
    body: RefreshRequest, request: Request, response: Response, accounts: AccountsDep
) -> TokenResponse | ChallengeResponse:
    """Trade a refresh token for new tokens; each refresh token works once."""
    response.headers.update(NO_STORE)
    try:
        result = accounts.auth.refresh(body.refresh_token, client_of(request))
    except AuthError as error:
        raise http_error(error) from error
    return _reply(result, response)


@router.post("/auth/logout", status_code=204, responses={401: {}})
def logout(identity: IdentityDep, accounts: AccountsDep) -> Response:
    """End this sign-in: its access and refresh tokens stop working."""
    accounts.auth.logout(identity.claims)
    return Response(status_code=204)


@router.get("/me", response_model=UserOut, responses={401: {}})
def me(identity: IdentityDep) -> UserOut:
    """Return the signed-in account."""
    return user_out(identity.user)


@router.post(
    "/me/password", response_model=TokenResponse, responses={401: {}, 403: {}, 422: {}}
)
def change_password(
    body: PasswordChange,
    identity: IdentityDep,
    request: Request,
    response: Response,
    accounts: AccountsDep,
) -> TokenResponse | ChallengeResponse:
    """Change the password; every sign-in ends and new tokens are returned."""
    response.headers.update(NO_STORE)
    try:
        result = accounts.auth.change_password(
            identity.user.id,
            body.current_password,
            body.new_password,
            client_of(request),
        )
    except AuthError as error:
        raise http_error(error) from error
    return _reply(result, response)
