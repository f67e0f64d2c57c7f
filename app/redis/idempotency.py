"""Idempotency keys in Redis: a key claimed on one replica is seen by all of them.

A claim is one script (GET, or SET with an expiry if absent): of two requests with one key on two
replicas, exactly one claims it and the other is answered as a repeat (409 while the first runs,
the replay once it finished). The claim expires after `in_flight_seconds`, so a replica that dies
mid-request does not hold the key for the whole TTL; the final entry replaces the claim only if
the claim is still the same one (its token), and is kept `ttl_seconds`.
"""

from __future__ import annotations

import math

from app.redis.client import RedisClient
from app.stores.idempotency import Entry

# KEYS[1]: the key. ARGV: the claim (JSON), its expiry in ms. The entry found, or false.
_CLAIM = """
local found = redis.call('GET', KEYS[1])
if found then return found end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

# KEYS[1]: the key. ARGV: the token, then the final entry and its expiry in ms (finish), or
# nothing more (release). Only the holder of the claim may replace or remove it.
_SETTLE = """
local found = redis.call('GET', KEYS[1])
if not found then return 0 end
local token = cjson.decode(found)['token']
if token ~= ARGV[1] then return 0 end
if ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
"""


class RedisKeys:
    """The idempotency `KeyBackend` kept in Redis (memory there is bounded by the TTL)."""

    def __init__(self, client: RedisClient, *, ttl_seconds: float) -> None:
        self._client = client
        self._ttl_ms = max(1, math.ceil(ttl_seconds * 1000))
        self._claim = client.script(_CLAIM)
        self._settle = client.script(_SETTLE)

    def _key(self, key: str) -> str:
        return f"{self._client.prefix}idempotency:{key}"

    async def claim(self, key: str, entry: Entry, in_flight_seconds: float) -> Entry | None:
        """The entry already under `key`, or None after storing `entry` there."""
        args = [entry.to_json(), max(1, math.ceil(in_flight_seconds * 1000))]
        found = await self._client.call(
            "idempotency.claim", lambda r: self._claim([self._key(key)], args)
        )
        return Entry.from_json(found) if found else None

    async def finish(self, key: str, entry: Entry) -> None:
        """Replace our claim with the final entry, kept for the TTL."""
        args = [entry.token, entry.to_json(), self._ttl_ms]
        await self._client.call(
            "idempotency.finish", lambda r: self._settle([self._key(key)], args, r), durable=True
        )

    async def release(self, key: str, token: str) -> None:
        """Remove our claim: the client may retry the request."""
        await self._client.call(
            "idempotency.release", lambda r: self._settle([self._key(key)], [token])
        )
