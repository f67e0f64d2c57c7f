"""Cache invalidation across replicas, over the pub/sub backplane.

A write drops what it changed from this replica's cache, then publishes the keys and patterns
on `invalidate:<cache>` before it is acknowledged; every other replica drops them when the
message arrives (its event loop reads it as soon as it can: well under a millisecond on one
host). The window in which another replica can still answer with the previous version is that
delivery, and nothing more: a replica that is not subscribed (Redis lost, reconnecting) does not
cache at all, and starts empty once subscribed again, because it may have missed messages.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import orjson

from app.core.exceptions import StoreUnavailable
from app.core.logging import get_logger
from app.redis.backplane import Backplane
from app.stores.invalidation import LocalCache

log = get_logger(__name__)


class RedisInvalidation:
    """Invalidates `cache` here and on every replica sharing the backplane."""

    def __init__(self, cache: LocalCache, backplane: Backplane) -> None:
        self._cache = cache
        self._backplane = backplane
        self._channel = f"invalidate:{cache.name}"
        self._origin = secrets.token_hex(8)  # our own messages come back: skip them
        # Not subscribed yet: do not cache until we hear what others invalidate.
        cache.suspend()
        backplane.handle(self._channel, self._received)
        backplane.on_lost(cache.suspend)
        backplane.on_restored(cache.resume)

    async def __call__(self, keys: Sequence[str], patterns: Sequence[str] = ()) -> None:
        """Drop `keys` and `patterns` here, then tell the other replicas."""
        _apply(self._cache, keys, patterns)
        message = orjson.dumps({"origin": self._origin, "keys": keys, "patterns": patterns})
        try:
            await self._backplane.publish(self._channel, message)
        except StoreUnavailable:
            # Redis is gone for everyone: the other replicas lost their subscription too, so
            # they pass reads through (see the module docstring) and nothing stale is served.
            log.warning("invalidation_not_published", cache=self._cache.name)

    def _received(self, channel: str, payload: bytes) -> None:
        message = orjson.loads(payload)
        if message.get("origin") != self._origin:
            _apply(self._cache, message.get("keys", ()), message.get("patterns", ()))


def _apply(cache: LocalCache, keys: Sequence[str], patterns: Sequence[str]) -> None:
    for key in keys:
        cache.invalidate(key)
    for pattern in patterns:
        cache.invalidate_pattern(pattern)
