"""`/api/v1/auth`: the OAuth2 password flow and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from app.api.deps import API_PREFIX, AuthServiceDep, CurrentUser
from app.schemas.auth import Token
from app.schemas.problem import problem_responses
from app.schemas.users import UserOut

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])


@router.post("/token", response_model=Token, responses=problem_responses(401, 403, 413, 422))
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], auth: AuthServiceDep
) -> Token:
    """Exchange `username` (the email) and `password` for a bearer token."""
    issued = await auth.login(form.username, form.password)
    return Token(access_token=issued.token, expires_in=issued.expires_in)


@router.get("/me", response_model=UserOut, responses=problem_responses(401))
async def read_current_user(user: CurrentUser) -> UserOut:
    """The account the bearer token belongs to."""
    return UserOut.model_validate(user, from_attributes=True)
