"""Logging in, recognising the caller behind a bearer token, and logging out.

A token acts only as the user it was issued to, under the credentials it was issued with: its
`crd` claim is a keyed fingerprint of the user's id and credential stamp, a random value that
changes whenever the password changes, the account is deactivated or reactivated, or the user
logs out everywhere. A user id reused after a restart without a snapshot, a changed password,
or a deactivation in between all make the fingerprint differ, and the token is refused.
"""

from __future__ import annotations

import hmac

from app.core.exceptions import Forbidden, InvalidTokenError, Unauthorized
from app.core.logging import get_logger
from app.core.parsing import ascii_int
from app.core.security import IssuedToken, PasswordHasher, TokenClaims, TokenCodec
from app.services.login_throttle import MAX_ACCOUNT_LENGTH, LoginThrottle
from app.services.users import User, UserService, normalise_email
from app.stores.revocations import Revocations

log = get_logger(__name__)

_BAD_CREDENTIALS = "Incorrect email or password."
_INVALID_TOKEN = "The token is invalid or expired."  # noqa: S105 - a message


class AuthService:
    """Password login issuing JWTs, and token verification down to a live account."""

    def __init__(
        self,
        users: UserService,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        *,
        revocations: Revocations,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._tokens = tokens
        self._throttle = throttle
        self._revocations = revocations

    def _credential(self, user: User) -> str:
        return self._tokens.credential(str(user.id), user.credential_stamp)

    async def login(self, email: str, password: str, *, client_address: str = "") -> IssuedToken:
        """Issue a token; an unknown email and a wrong password get the same answer and cost."""
        if len(email) > MAX_ACCOUNT_LENGTH:
            # No account has such a name: refused before it is normalised or remembered.
            raise Unauthorized(_BAD_CREDENTIALS)
        account = normalise_email(email)
        if self._throttle is not None:
            await self._throttle.check(client_address, account)
        user = await self._users.find_by_email(email)
        ok = await self._hasher.verify(password, user.password_hash if user else None)
        if user is None or not ok:
            if self._throttle is not None:
                await self._throttle.failed(client_address, account)
            log.info("login_failed")
            raise Unauthorized(_BAD_CREDENTIALS)
        if self._throttle is not None:
            await self._throttle.succeeded(client_address, account)
        if not user.is_active:
            # Only said once the password has been proven: it tells nothing to a guesser.
            raise Forbidden("This account is deactivated.")
        log.info("login_succeeded", user_id=user.id)
        return self._tokens.issue(str(user.id), self._credential(user))

    async def _claims(self, token: str | None) -> TokenClaims:
        if not token:
            raise Unauthorized("Authentication required: send a bearer token.")
        try:
            claims = self._tokens.decode(token)
        except InvalidTokenError:
            raise Unauthorized(_INVALID_TOKEN, invalid_token=True) from None
        if await self._revocations.is_revoked(claims.token_id):
            raise Unauthorized("The token was revoked (logged out).", invalid_token=True)
        return claims

    async def authenticate(self, token: str | None) -> User:
        """The active user the token was issued to, under unchanged credentials."""
        return await self._user_of(await self._claims(token))

    async def _user_of(self, claims: TokenClaims) -> User:
        user_id = ascii_int(claims.subject)
        user = await self._users.find_active(user_id) if user_id is not None else None
        if user is None:
            raise Unauthorized(
                "The token's account no longer exists or is deactivated.", invalid_token=True
            )
        if not hmac.compare_digest(claims.credential, self._credential(user)):
            raise Unauthorized(
                "The token was issued under credentials that have changed; log in again.",
                invalid_token=True,
            )
        return user

    async def logout(self, token: str | None, *, everywhere: bool = False) -> None:
        """Revoke the presented token (or, `everywhere`, every token of its user)."""
        claims = await self._claims(token)
        user = await self._user_of(claims)
        if everywhere or not await self._revocations.revoke(claims.token_id, claims.expires_at):
            await self._users.rotate_credentials(user.id)
        log.info("logged_out", user_id=user.id, everywhere=everywhere)
