"""Cache invalidation in this process (`MemoryInvalidation`); `RedisInvalidation`
(app/redis/invalidation.py) is its twin across replicas."""

from __future__ import annotations

from collections.abc import Sequence

from app.stores.invalidation import LocalCache


class MemoryInvalidation:
    """Invalidates one cache in this process (all there is with the memory store)."""

    def __init__(self, cache: LocalCache) -> None:
        self._cache = cache

    async def __call__(self, keys: Sequence[str], patterns: Sequence[str] = ()) -> None:
        """Drop `keys` and `patterns`."""
        for key in keys:
            self._cache.invalidate(key)
        for pattern in patterns:
            self._cache.invalidate_pattern(pattern)
