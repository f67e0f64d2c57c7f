"""A TTL + LRU cache for async code, with single-flight loading and safe invalidation.

- Entries expire `ttl` seconds after they were stored; at most `max_entries` are kept, the
  least recently used going first.
- `get_or_load` is single-flight: concurrent misses for one key run the loader once and share
  its result — or its exception, which is never cached.
- Invalidation cannot be undone by a slow reader: every invalidation bumps a generation, and a
  load that started before it does not store its (possibly stale) result. So a client never
  reads its own write stale, even when a read of the old value was in flight during the write.
- A cleanup task started by the lifespan drops expired entries that nobody asks for again.
- `suspend` turns it into a pass-through (every lookup loads, nothing is stored) until
  `resume`: for while it cannot hear other replicas' invalidations.
- With `stale_seconds`, an expired (or suspended) entry is kept that much longer, never
  served as fresh, for `get_stale`: the `stale-if-error` fallback (RFC 5861) that answers
  with the last copy while the store fails. Invalidation drops an entry outright, so a copy a
  write replaced or deleted is never served, fresh or stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from prometheus_client import Counter, Gauge

from app.core.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")

CACHE_HITS = Counter("cache_hits_total", "Cache lookups answered from the cache.", ["cache"])
CACHE_MISSES = Counter("cache_misses_total", "Cache lookups that had to load.", ["cache"])
CACHE_EVICTIONS = Counter(
    "cache_evictions_total", "Entries removed, by reason.", ["cache", "reason"]
)  # reason: expired, lru, invalidated
CACHE_ENTRIES = Gauge("cache_entries", "Entries held.", ["cache"], multiprocess_mode="liveall")


@dataclass(slots=True)
class _Entry:
    value: Any
    expires_at: float
    stored_at: float


class TTLCache:
    """The cache; one instance per purpose, named in its metrics."""

    def __init__(
        self,
        *,
        name: str,
        ttl_seconds: float,
        max_entries: int,
        stale_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0 or max_entries < 1 or stale_seconds < 0:
            raise ValueError("need ttl_seconds, max_entries > 0 and stale_seconds >= 0")
        self.name = name
        self.ttl = ttl_seconds
        self.stale_seconds = stale_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Any]] = {}
        self._generation = 0
        self._suspended = False
        self._cleanup_task: asyncio.Task[None] | None = None
        self.hits = 0
        self.misses = 0
        self.evictions = {"expired": 0, "lru": 0, "invalidated": 0}
        # Resolved once: `labels()` validates and locks on every call, and a hit is hot-path.
        self._hit_count = CACHE_HITS.labels(cache=name)
        self._miss_count = CACHE_MISSES.labels(cache=name)
        self._size = CACHE_ENTRIES.labels(cache=name)
        self._size.set(0)

    def __len__(self) -> int:
        return len(self._entries)

    def _evicted(self, reason: str, count: int = 1) -> None:
        if count:
            self.evictions[reason] += count
            CACHE_EVICTIONS.labels(cache=self.name, reason=reason).inc(count)
            self._size.set(len(self._entries))

    def _lookup(self, key: str) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        now = self._clock()
        if entry.expires_at <= now:
            if entry.expires_at + self.stale_seconds <= now:
                del self._entries[key]
                self._evicted("expired")
            return False, None
        self._entries.move_to_end(key)
        return True, entry.value

    def get_stale(self, key: str) -> tuple[Any, float] | None:
        """(value, age in seconds) of the entry for `key`, fresh or expired within
        `stale_seconds`; None if there is none. Never counts a hit: it is a fallback."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is None or entry.expires_at + self.stale_seconds <= now:
            return None
        return entry.value, now - entry.stored_at

    def suspend(self) -> None:
        """Serve nothing as fresh and store nothing until `resume` (entries could go stale
        unseen). Without `stale_seconds` the cache empties; with it, entries stay as stale
        copies for `get_stale` until that window passes."""
        self._suspended = True
        if not self.stale_seconds:
            self.clear()
            return
        self._generation += 1  # loads running now will not store
        now = self._clock()
        for entry in self._entries.values():
            entry.expires_at = min(entry.expires_at, now)

    def resume(self) -> None:
        """Cache again, starting empty."""
        self.clear()
        self._suspended = False

    def clear(self) -> int:
        """Drop every entry; loads already running will not store. Returns how many."""
        self._generation += 1
        count = len(self._entries)
        self._entries.clear()
        self._evicted("invalidated", count)
        return count

    def get(self, key: str) -> tuple[bool, Any]:
        """(True, value) for a live entry, else (False, None); counts a hit or a miss."""
        hit, value = self._lookup(key) if not self._suspended else (False, None)
        if hit:
            self.hits += 1
            self._hit_count.inc()
        else:
            self.misses += 1
            self._miss_count.inc()
        return hit, value

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store `value` for `ttl` seconds (the cache's TTL by default)."""
        if self._suspended:
            return
        now = self._clock()
        self._entries[key] = _Entry(value, now + (ttl or self.ttl), now)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self._evicted("lru")
        self._size.set(len(self._entries))

    def invalidate(self, key: str) -> bool:
        """Drop one key; True if it was held. Loads already running will not store."""
        self._generation += 1
        if self._entries.pop(key, None) is None:
            return False
        self._evicted("invalidated")
        return True

    def invalidate_pattern(self, pattern: str) -> int:
        """Drop every key matching the glob `pattern` (`users:list:*`); returns how many."""
        self._generation += 1
        keys = [k for k in self._entries if fnmatch.fnmatchcase(k, pattern)]
        for key in keys:
            del self._entries[key]
        self._evicted("invalidated", len(keys))
        return len(keys)

    async def get_or_load(
        self, key: str, loader: Callable[[], Awaitable[T]], ttl: float | None = None
    ) -> T:
        """The cached value, or the loader's result (one load per key at a time)."""
        hit, value = self.get(key)
        if hit:
            return cast(T, value)
        while (pending := self._loading.get(key)) is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                # The load we were waiting for was abandoned, not us: load it ourselves.
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        generation = self._generation
        try:
            result = await loader()
        except BaseException as exc:
            # Shared with everyone waiting, never cached; a cancelled leader cancels them too.
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters may all be gone
            raise
        else:
            future.set_result(result)
            if generation == self._generation:
                self.set(key, result, ttl)
            return result
        finally:
            del self._loading[key]

    def purge_expired(self) -> int:
        """Drop every entry expired for longer than `stale_seconds`; returns how many."""
        now = self._clock() - self.stale_seconds
        expired = [k for k, e in self._entries.items() if e.expires_at <= now]
        for key in expired:
            del self._entries[key]
        self._evicted("expired", len(expired))
        return len(expired)

    def start_cleanup(self, interval_seconds: float) -> None:
        """Purge expired entries every `interval_seconds` until `stop_cleanup`."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_seconds)
                self.purge_expired()

        self._cleanup_task = asyncio.get_running_loop().create_task(
            loop(), name=f"cache-{self.name}"
        )

    async def stop_cleanup(self) -> None:
        """Stop the cleanup task and wait for it."""
        task, self._cleanup_task = self._cleanup_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def stats(self) -> dict[str, Any]:
        """Hits, misses, evictions by reason and size, for health and tests."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "evictions": dict(self.evictions),
            "size": len(self._entries),
            "suspended": self._suspended,
            "max_entries": self.max_entries,
            "ttl_seconds": self.ttl,
            "stale_seconds": self.stale_seconds,
        }
