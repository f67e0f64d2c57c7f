"""`/api/v1/auth`: the OAuth2 password flow, the current user, and logging out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.security import OAuth2PasswordRequestForm

from app.api.deps import API_PREFIX, AuthServiceDep, BearerToken, ClientAddress, CurrentUser
from app.schemas.auth import Token
from app.schemas.problem import problem_responses
from app.schemas.users import UserOut, public_view

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])

# RFC 6749 section 5.1: a response carrying a token must not be stored by any cache.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/token", response_model=Token, responses=problem_responses(401, 403, 413, 422, 429, 503)
)
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    auth: AuthServiceDep,
    client_address: ClientAddress,
    response: Response,
) -> Token:
    """Exchange `username` (the email) and `password` for a bearer token.

    Attempts are limited per client address and account, and an account that keeps failing
    makes the next attempt wait (429 with `Retry-After`)."""
    issued = await auth.login(form.username, form.password, client_address=client_address)
    response.headers.update(_NO_STORE)
    return Token(access_token=issued.token, expires_in=issued.expires_in)


@router.get("/me", response_model=UserOut, responses=problem_responses(401))
async def read_current_user(user: CurrentUser) -> dict[str, object]:
    """The account the bearer token belongs to."""
    return public_view(user, full=True)


@router.post("/logout", status_code=204, responses=problem_responses(401))
async def logout(
    auth: AuthServiceDep,
    token: BearerToken,
    everywhere: Annotated[
        bool, Query(description="Revoke every token of the account, not only this one.")
    ] = False,
) -> Response:
    """Revoke the presented token (`?everywhere=true`: every token of its account)."""
    await auth.logout(token, everywhere=everywhere)
    return Response(status_code=204)
