"""Logging in and recognising the caller behind a bearer token."""

from __future__ import annotations

from app.core.exceptions import Forbidden, Unauthorized
from app.core.logging import get_logger
from app.core.security import InvalidTokenError, IssuedToken, PasswordHasher, TokenCodec
from app.services.users import User, UserService

log = get_logger(__name__)

_BAD_CREDENTIALS = "Incorrect email or password."


class AuthService:
    """Password login issuing JWTs, and token verification down to a live account."""

    def __init__(self, users: UserService, hasher: PasswordHasher, tokens: TokenCodec) -> None:
        self._users = users
        self._hasher = hasher
        self._tokens = tokens

    async def login(self, email: str, password: str) -> IssuedToken:
        """Issue a token; an unknown email and a wrong password get the same answer and cost."""
        user = await self._users.find_by_email(email)
        ok = await self._hasher.verify(password, user.password_hash if user else None)
        if user is None or not ok:
            log.info("login_failed")
            raise Unauthorized(_BAD_CREDENTIALS)
        if not user.is_active:
            # Only said once the password has been proven: it tells nothing to a guesser.
            raise Forbidden("This account is deactivated.")
        log.info("login_succeeded", user_id=user.id)
        return self._tokens.issue(str(user.id))

    async def authenticate(self, token: str | None) -> User:
        """The active user the token belongs to, or `Unauthorized`."""
        if not token:
            raise Unauthorized("Authentication required: send a bearer token.")
        try:
            claims = self._tokens.decode(token)
        except InvalidTokenError:
            raise Unauthorized("The token is invalid or expired.", invalid_token=True) from None
        if not claims.subject.isdigit():
            raise Unauthorized("The token is invalid or expired.", invalid_token=True)
        user = await self._users.find_active(int(claims.subject))
        if user is None:
            raise Unauthorized(
                "The token's account no longer exists or is deactivated.", invalid_token=True
            )
        return user
