"""The login throttle's failure records in Redis: one back-off for every replica.

Each key (an account, or an address at an account) is one hash of its consecutive failures and
when its back-off ends, expiring `FORGET_AFTER_SECONDS` after the last failure. Names are hashed
into the key, so Redis holds no email address and every key has the same, small size.
"""

from __future__ import annotations

import hashlib
import time

from app.redis.client import RedisClient
from app.stores.login_failures import FORGET_AFTER_SECONDS, MAX_BACKOFF_SECONDS

# KEYS: the record. ARGV: now (ms), the failure threshold, the longest back-off (ms), the TTL
# (ms). One more failure; past the threshold the back-off doubles from 1 s.
_FAIL = """
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
local threshold = tonumber(ARGV[2])
if count >= threshold then
  local delay = math.min(tonumber(ARGV[3]), 1000 * 2 ^ (count - threshold))
  redis.call('HSET', KEYS[1], 'until', tonumber(ARGV[1]) + delay)
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return count
"""


class RedisFailures:
    """The `FailureBook` kept in Redis, shared by every replica."""

    def __init__(self, client: RedisClient, *, kind: str, threshold: int) -> None:
        self._client = client
        self._prefix = f"{client.prefix}login:{kind}:"
        self._threshold = threshold
        self._fail = client.script(_FAIL)

    def _key(self, name: str) -> str:
        return self._prefix + hashlib.sha256(name.encode()).hexdigest()[:32]

    async def state(self, key: str) -> tuple[bool, float]:
        """Whether `key` failed lately, and the seconds left of its back-off."""
        record = self._key(key)
        count, until = await self._client.call(
            "login.state", lambda r: r.hmget(record, ["count", "until"]), idempotent=True
        )
        if count is None:
            return False, 0.0
        left = (int(until) - time.time() * 1000) / 1000 if until is not None else 0.0
        return True, left

    async def fail(self, key: str) -> None:
        """One more failure of `key`, for every replica."""
        args = [
            int(time.time() * 1000),
            self._threshold,
            int(MAX_BACKOFF_SECONDS * 1000),
            int(FORGET_AFTER_SECONDS * 1000),
        ]
        record = self._key(key)
        await self._client.call("login.fail", lambda _: self._fail([record], args))

    async def clear(self, key: str) -> None:
        """Forget `key`'s failures."""
        record = self._key(key)
        await self._client.call("login.clear", lambda r: r.delete(record))
