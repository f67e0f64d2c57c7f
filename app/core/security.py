"""Password hashing and JWT access tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from jose import JWTError, jwt
from passlib.context import CryptContext

from app.core.bounded_executor import BoundedExecutor
from app.core.exceptions import InvalidTokenError

T = TypeVar("T")

# bcrypt ignores what follows the 72nd byte and refuses NUL bytes; registration refuses both
# rather than silently truncating.
BCRYPT_MAX_BYTES = 72


def derived_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived from a configured secret (HMAC-SHA256 of the purpose):
    every replica with the same secret derives the same key, and no purpose learns another's."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def _hashable(password: str) -> bool:
    try:
        encoded = password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return b"\x00" not in encoded and len(encoded) <= BCRYPT_MAX_BYTES


class PasswordHasher:
    """bcrypt through passlib (libpass); every hash and verify runs in a thread.

    bcrypt is slow on purpose (cost 12 is about 4 hashes per second per core): on the event loop
    it would stall every other request for a quarter of a second. With an `executor` the work
    runs on threads of its own, bounded (a full queue answers 503); without one (tests), in
    the loop's default executor.
    """

    def __init__(self, rounds: int = 12, *, executor: BoundedExecutor | None = None) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        self._executor = executor

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is not None:
            return await self._executor.run(fn, *args)
        return await asyncio.to_thread(fn, *args)

    async def hash(self, password: str) -> str:
        """Hash `password` with a fresh salt."""
        return await self._run(self._context.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Check `password`; with no hash (unknown account) spend the same time and fail."""
        if password_hash is None or not _hashable(password):
            # Equal work for an unknown email (or a password bcrypt cannot take, which no
            # account can have), so timing does not reveal which emails exist.
            await self._run(self._context.dummy_verify)
            return False
        verified: bool = await self._run(self._context.verify, password, password_hash)
        return verified


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
    token_id: str
    credential: str


# Clocks of issuer and verifier are the same process's here; 30 s covers replicas' drift.
CLOCK_LEEWAY_SECONDS = 30


class TokenCodec:
    """Issues and verifies HMAC-signed JWTs with exactly one allowed algorithm.

    Every registered claim is checked: `iss` and `aud` are ours, `iat` is not in the future,
    `exp` is no later than one lifetime after `iat`, `jti` names the token (for revocation), and
    a `crit` header (extensions we do not understand) is refused. `crd` binds the token to the
    credentials it was issued under (see `credential`).
    """

    def __init__(
        self,
        secret_key: str,
        algorithm: str,
        expire_minutes: int,
        *,
        issuer: str = "resilient-api",
        audience: str = "resilient-api",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret_key = secret_key
        self._algorithm = algorithm
        self._lifetime = expire_minutes * 60
        self._issuer = issuer
        self._audience = audience
        self._clock = clock

    def credential(self, *parts: str) -> str:
        """A keyed fingerprint of what a token must stay bound to (the user's id and credential
        stamp): it proves nothing outside this service and changes when any part changes."""
        digest = hmac.new(
            self._secret_key.encode(), "\x1f".join(parts).encode(), hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def issue(self, subject: str, credential: str) -> IssuedToken:
        """Sign a token for `subject`, bound to `credential`, valid for the configured lifetime."""
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "iat": now,
            "exp": now + self._lifetime,
            "jti": secrets.token_urlsafe(16),
            "crd": credential,
        }
        token = jwt.encode(claims, self._secret_key, algorithm=self._algorithm)
        return IssuedToken(token=token, expires_in=self._lifetime)

    def decode(self, token: str) -> TokenClaims:
        """Verify `token` and return its claims, or raise `InvalidTokenError`.

        The algorithm list is pinned to the configured one: python-jose up to 3.5.0 would
        otherwise accept a token whose header picks its own algorithm (CVE-2024-33663 and its
        incomplete fix), and `alg: none` is refused the same way.
        """
        try:
            if "crit" in jwt.get_unverified_header(token):
                raise InvalidTokenError("the token names critical extensions we do not support")
            claims = jwt.decode(
                token,
                self._secret_key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require_exp": True,
                    "require_iat": True,
                    "require_sub": True,
                    "require_jti": True,
                    "require_aud": True,
                    "require_iss": True,
                    "leeway": CLOCK_LEEWAY_SECONDS,
                },
            )
        except (JWTError, ValueError, TypeError, OverflowError) as exc:
            raise InvalidTokenError(str(exc)) from None
        subject, issued_at, expires_at = claims.get("sub"), claims.get("iat"), claims.get("exp")
        token_id, credential = claims.get("jti"), claims.get("crd")
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("sub must be a non-empty string")
        if not isinstance(issued_at, int) or not isinstance(expires_at, int):
            raise InvalidTokenError("iat and exp must be integers")
        if not isinstance(token_id, str) or not isinstance(credential, str):
            raise InvalidTokenError("jti and crd must be strings")
        now = int(self._clock())
        if issued_at > now + CLOCK_LEEWAY_SECONDS:
            raise InvalidTokenError("the token was issued in the future")
        if expires_at - issued_at > self._lifetime + CLOCK_LEEWAY_SECONDS:
            raise InvalidTokenError("the token lives longer than this service issues tokens for")
        return TokenClaims(subject, issued_at, expires_at, token_id, credential)

    def subject_or_none(self, token: str) -> str | None:
        """The subject of a valid token, or None; for code that only needs to identify a client."""
        try:
            return self.decode(token).subject
        except InvalidTokenError:
            return None
