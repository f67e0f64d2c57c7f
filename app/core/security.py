"""Password hashing and JWT access tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from jose import JWTError, jwt
from passlib.context import CryptContext

# bcrypt ignores what follows the 72nd byte and refuses NUL bytes; registration refuses both
# rather than silently truncating.
BCRYPT_MAX_BYTES = 72


def _hashable(password: str) -> bool:
    try:
        encoded = password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return b"\x00" not in encoded and len(encoded) <= BCRYPT_MAX_BYTES


class PasswordHasher:
    """bcrypt through passlib (libpass); every hash and verify runs in the blocking-I/O threads.

    bcrypt is slow on purpose (cost 12 is about 4 hashes per second per core): on the event loop
    it would stall every other request for a quarter of a second.
    """

    def __init__(self, rounds: int = 12) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)

    async def hash(self, password: str) -> str:
        """Hash `password` with a fresh salt."""
        return await asyncio.to_thread(self._context.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Check `password`; with no hash (unknown account) spend the same time and fail."""
        if password_hash is None or not _hashable(password):
            # Equal work for an unknown email (or a password bcrypt cannot take, which no
            # account can have), so timing does not reveal which emails exist.
            await asyncio.to_thread(self._context.dummy_verify)
            return False
        return await asyncio.to_thread(self._context.verify, password, password_hash)


class InvalidTokenError(Exception):
    """The token is missing a claim, expired, malformed or not signed by us."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly signed access token and its lifetime."""

    token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The verified claims of an access token that we use."""

    subject: str
    issued_at: int
    expires_at: int


class TokenCodec:
    """Issues and verifies HMAC-signed JWTs with exactly one allowed algorithm."""

    def __init__(
        self,
        secret_key: str,
        algorithm: str,
        expire_minutes: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret_key = secret_key
        self._algorithm = algorithm
        self._lifetime = expire_minutes * 60
        self._clock = clock

    def issue(self, subject: str) -> IssuedToken:
        """Sign a token for `subject` valid for the configured lifetime."""
        now = int(self._clock())
        claims = {"sub": subject, "iat": now, "exp": now + self._lifetime}
        token = jwt.encode(claims, self._secret_key, algorithm=self._algorithm)
        return IssuedToken(token=token, expires_in=self._lifetime)

    def decode(self, token: str) -> TokenClaims:
        """Verify `token` and return its claims, or raise `InvalidTokenError`.

        The algorithm list is pinned to the configured one: python-jose up to 3.5.0 would
        otherwise accept a token whose header picks its own algorithm (CVE-2024-33663 and its
        incomplete fix), and `alg: none` is refused the same way.
        """
        try:
            claims = jwt.decode(
                token,
                self._secret_key,
                algorithms=[self._algorithm],
                options={"require_exp": True, "require_iat": True, "require_sub": True},
            )
        except (JWTError, ValueError, TypeError) as exc:
            raise InvalidTokenError(str(exc)) from None
        subject, issued_at, expires_at = claims.get("sub"), claims.get("iat"), claims.get("exp")
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("sub must be a non-empty string")
        if not isinstance(issued_at, int) or not isinstance(expires_at, int):
            raise InvalidTokenError("iat and exp must be integers")
        return TokenClaims(subject=subject, issued_at=issued_at, expires_at=expires_at)

    def subject_or_none(self, token: str) -> str | None:
        """The subject of a valid token, or None; for code that only needs to identify a client."""
        try:
            return self.decode(token).subject
        except InvalidTokenError:
            return None
