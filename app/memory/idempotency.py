"""Idempotency keys in this process (`MemoryKeys`); `RedisKeys` (app/redis/idempotency.py) is
its twin for every replica, and app/services/idempotency.py holds the rules."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from app.stores.idempotency import Entry


class MemoryKeys:
    """Keys in this process's memory: kept `ttl_seconds` from their claim, `max_keys` at most
    (past that the oldest is forgotten early, so memory stays bounded).

    Only the event loop touches it and no await separates a lookup from the insert that
    follows it, so a claim is atomic.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_keys = max_keys
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Entry]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, now: float) -> None:
        while self._entries:
            created, _ = next(iter(self._entries.values()))
            if now - created < self._ttl and len(self._entries) < self._max_keys:
                break
            self._entries.popitem(last=False)

    async def claim(self, key: str, entry: Entry, in_flight_seconds: float) -> Entry | None:
        """The entry already under `key`, or None after storing `entry` there."""
        now = self._clock()
        self._evict(now)
        found = self._entries.get(key)
        if found is not None:
            return found[1]
        self._entries[key] = (now, entry)
        return None

    async def finish(self, key: str, entry: Entry) -> None:
        """Store the final entry, if the claim (same token) is still there."""
        found = self._entries.get(key)
        if found is not None and found[1].token == entry.token:
            self._entries[key] = (found[0], entry)

    async def release(self, key: str, token: str) -> None:
        """Forget the claim, if it is still ours."""
        found = self._entries.get(key)
        if found is not None and found[1].token == token:
            del self._entries[key]
