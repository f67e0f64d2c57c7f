"""The cache-invalidation interface (`Invalidate`): drop keys and patterns from this
process's cache (`MemoryInvalidation`, app/services/cache.py) or from every replica's
(`RedisInvalidation`, app/redis/invalidation.py), which acts on a `LocalCache`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class LocalCache(Protocol):
    """What invalidation across replicas needs of this replica's cache (`TTLCache` fits)."""

    name: str

    def suspend(self) -> None:
        """Stop caching (and drop what is held) until `resume`."""
        ...

    def resume(self) -> None:
        """Cache again."""
        ...

    def invalidate(self, key: str) -> bool:
        """Drop one key."""
        ...

    def invalidate_pattern(self, pattern: str) -> int:
        """Drop the keys matching a glob pattern."""
        ...


class Invalidate(Protocol):
    """Drop keys and glob patterns from a cache: this process's (`MemoryInvalidation`), or
    every replica's (`app/redis/invalidation.py`)."""

    async def __call__(self, keys: Sequence[str], patterns: Sequence[str] = ()) -> None: ...
