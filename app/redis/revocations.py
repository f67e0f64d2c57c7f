"""Logged-out tokens in Redis: a token logged out on one replica is refused by all of them.

One key per token id, expiring when the token would have expired anyway, so the set never holds
more than the tokens still valid.
"""

from __future__ import annotations

import time

from app.redis.client import RedisClient


class RedisRevocations:
    """The token `Revocations` kept in Redis."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    def _key(self, token_id: str) -> str:
        return f"{self._client.prefix}revoked:{token_id}"

    async def revoke(self, token_id: str, expires_at: int) -> bool:
        """Remember `token_id` until `expires_at` (always room: Redis memory is the bound)."""
        if expires_at <= time.time():
            return True  # expired already: refused anyway
        key = self._key(token_id)
        await self._client.call(
            "revocations.revoke", lambda r: r.set(key, b"1", exat=expires_at), durable=True
        )
        return True

    async def is_revoked(self, token_id: str) -> bool:
        """Whether `token_id` was logged out, on any replica."""
        key = self._key(token_id)
        return bool(
            await self._client.call("revocations.check", lambda r: r.exists(key), idempotent=True)
        )
