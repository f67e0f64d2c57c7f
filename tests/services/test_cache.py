"""The TTL cache with a fake clock: expiry, LRU, invalidation, stats, single-flight."""

from __future__ import annotations

import asyncio

import pytest

from app.services.cache import TTLCache
from tests.fakes import FakeClock


@pytest.fixture
def cache(clock: FakeClock) -> TTLCache:
    return TTLCache(name="test", ttl_seconds=10, max_entries=3, clock=clock)


def test_entries_expire_after_their_ttl(cache: TTLCache, clock: FakeClock) -> None:
    cache.set("a", 1)
    cache.set("b", 2, ttl=30)
    clock.now = 9.9
    assert cache.get("a") == (True, 1)
    clock.now = 10
    assert cache.get("a") == (False, None)
    assert cache.get("b") == (True, 2)
    assert cache.stats()["evictions"]["expired"] == 1


def test_least_recently_used_goes_first(cache: TTLCache) -> None:
    for key in ("a", "b", "c"):
        cache.set(key, key)
    cache.get("a")  # a is now the most recently used
    cache.set("d", "d")
    assert cache.get("b") == (False, None)
    assert cache.get("a") == (True, "a")
    assert cache.stats()["evictions"]["lru"] == 1
    assert len(cache) == 3


def test_invalidation_by_key_and_by_pattern(cache: TTLCache) -> None:
    cache.set("users:1", 1)
    cache.set("users:list:a", 2)
    cache.set("users:list:b", 3)
    assert cache.invalidate("users:1")
    assert not cache.invalidate("users:1")
    assert cache.invalidate_pattern("users:list:*") == 2
    assert len(cache) == 0
    assert cache.stats()["evictions"]["invalidated"] == 3


def test_stats_count_hits_misses_and_size(cache: TTLCache) -> None:
    cache.get("x")
    cache.set("x", 1)
    cache.get("x")
    cache.get("x")
    assert cache.stats() | {} == {
        "hits": 2,
        "misses": 1,
        "evictions": {"expired": 0, "lru": 0, "invalidated": 0},
        "size": 1,
        "suspended": False,
        "max_entries": 3,
        "ttl_seconds": 10,
        "stale_seconds": 0.0,
    }


def test_a_suspended_cache_passes_through_and_starts_empty_when_resumed(cache: TTLCache) -> None:
    cache.set("x", 1)
    cache.suspend()
    assert cache.get("x") == (False, None)
    cache.set("y", 2)  # not stored while suspended
    cache.resume()
    assert (cache.get("x"), cache.get("y")) == ((False, None), (False, None))
    cache.set("x", 3)
    assert cache.get("x") == (True, 3)


async def test_a_suspended_cache_loads_every_time(cache: TTLCache) -> None:
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        return loads

    cache.suspend()
    assert [await cache.get_or_load("k", load) for _ in range(3)] == [1, 2, 3]


def test_purge_drops_expired_entries_nobody_asks_for(cache: TTLCache, clock: FakeClock) -> None:
    cache.set("a", 1)
    cache.set("b", 2, ttl=100)
    clock.now = 50
    assert cache.purge_expired() == 1
    assert len(cache) == 1


async def test_1000_concurrent_misses_run_the_loader_once() -> None:
    cache = TTLCache(name="sf", ttl_seconds=10, max_entries=10)
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return "value"

    results = await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(1000)))
    assert calls == 1
    assert set(results) == {"value"}
    assert await cache.get_or_load("k", load) == "value"
    assert calls == 1


async def test_an_exception_is_shared_and_not_cached() -> None:
    cache = TTLCache(name="err", ttl_seconds=10, max_entries=10)
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise LookupError("backend down")

    results = await asyncio.gather(
        *(cache.get_or_load("k", failing) for _ in range(50)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, LookupError) for r in results)
    assert len(cache) == 0

    async def working() -> str:
        return "ok"

    assert await cache.get_or_load("k", working) == "ok"


async def test_a_load_that_raced_an_invalidation_is_not_stored() -> None:
    cache = TTLCache(name="race", ttl_seconds=10, max_entries=10)
    release = asyncio.Event()

    async def slow_old_value() -> str:
        await release.wait()
        return "old"

    reader = asyncio.create_task(cache.get_or_load("users:1", slow_old_value))
    await asyncio.sleep(0)
    cache.invalidate("users:1")  # a write happened while the read was in flight
    release.set()
    assert await reader == "old"  # that reader asked before the write: fine
    assert cache.get("users:1") == (False, None)  # but nobody after the write sees it


async def test_waiters_load_themselves_if_the_leader_is_cancelled() -> None:
    cache = TTLCache(name="cancel", ttl_seconds=10, max_entries=10)
    started = asyncio.Event()

    async def hang() -> str:
        started.set()
        await asyncio.sleep(10)
        return "never"

    async def quick() -> str:
        return "fresh"

    leader = asyncio.create_task(cache.get_or_load("k", hang))
    await started.wait()
    follower = asyncio.create_task(cache.get_or_load("k", quick))
    await asyncio.sleep(0)
    leader.cancel()
    assert await follower == "fresh"


async def test_cleanup_task_starts_and_stops(clock: FakeClock) -> None:
    cache = TTLCache(name="cleanup", ttl_seconds=1, max_entries=10, clock=clock)
    cache.set("a", 1)
    clock.now = 5
    cache.start_cleanup(0.01)
    for _ in range(500):  # every 10 ms; a busy machine may run it late
        if len(cache) == 0:
            break
        await asyncio.sleep(0.01)
    assert len(cache) == 0
    await cache.stop_cleanup()


@pytest.fixture
def keeping(clock: FakeClock) -> TTLCache:
    """A cache that keeps expired copies for 60 s as stale-if-error fallbacks."""
    return TTLCache(name="stale", ttl_seconds=10, max_entries=3, stale_seconds=60, clock=clock)


def test_an_expired_copy_is_never_fresh_but_is_kept_for_the_stale_window(
    keeping: TTLCache, clock: FakeClock
) -> None:
    keeping.set("a", 1)
    clock.now = 25
    assert keeping.get("a") == (False, None)  # a miss: the loader runs as usual
    assert keeping.get_stale("a") == (1, 25)  # (value, age) for when the loader fails
    assert keeping.purge_expired() == 0
    clock.now = 70
    assert keeping.get_stale("a") is None  # 60 s past its expiry: gone
    assert keeping.purge_expired() == 1
    assert len(keeping) == 0


def test_an_invalidated_copy_is_never_served_even_stale(keeping: TTLCache) -> None:
    keeping.set("users:1", "old")
    keeping.set("users:list:a", "page")
    keeping.invalidate("users:1")
    keeping.invalidate_pattern("users:list:*")
    assert keeping.get_stale("users:1") is None
    assert keeping.get_stale("users:list:a") is None


def test_suspending_keeps_copies_as_stale_only(keeping: TTLCache, clock: FakeClock) -> None:
    keeping.set("a", 1)
    clock.now = 2
    keeping.suspend()  # invalidations from other replicas may now be missed
    assert keeping.get("a") == (False, None)
    assert keeping.get_stale("a") == (1, 2)
    keeping.set("b", 2)  # nothing stored while suspended
    assert keeping.get_stale("b") is None
    keeping.resume()  # back, having missed what others invalidated: start empty
    assert keeping.get_stale("a") is None


def test_without_a_stale_window_suspending_empties(cache: TTLCache) -> None:
    cache.set("a", 1)
    cache.suspend()
    assert cache.get_stale("a") is None
    assert len(cache) == 0
