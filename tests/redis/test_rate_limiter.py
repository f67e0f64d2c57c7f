"""The rate limiter on Redis: the same decisions and fields as in memory, one quota across
replicas, and limiting that goes on (per process) while Redis is gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.memory.rate_limiter import MemoryRateLimiter
from app.redis.client import RedisClient
from app.redis.rate_limiter import RedisRateLimiter
from app.stores.quotas import QuotaLimiter
from tests.redis_server import RedisServer


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[RedisClient]]:
    pool = [RedisClient(redis_url, timeout_seconds=2.0, max_connections=8) for _ in range(2)]
    yield pool
    for client in pool:
        await client.close()


def _redis_limiter(client: RedisClient, quota: int, window: float) -> RedisRateLimiter:
    return RedisRateLimiter(client, quota, window, fallback=MemoryRateLimiter(quota, window))


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_burst_is_allowed_then_refused_with_the_same_fields(
    backend: str, clients: list[RedisClient]
) -> None:
    limiter: QuotaLimiter = (
        MemoryRateLimiter(5, 10) if backend == "memory" else _redis_limiter(clients[0], 5, 10)
    )
    decisions = [await limiter.acquire("a") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert decisions[-1].retry_after == 2  # one request every 10/5 s
    assert decisions[-1].reset_seconds == 10
    assert (await limiter.acquire("b")).allowed  # keys are independent


async def test_one_quota_across_two_replicas(clients: list[RedisClient]) -> None:
    replicas = [_redis_limiter(client, 10, 60) for client in clients]
    decisions = await asyncio.gather(*(replicas[i % 2].acquire("client") for i in range(30)))
    assert sum(d.allowed for d in decisions) == 10


async def test_requests_come_back_at_the_steady_rate(clients: list[RedisClient]) -> None:
    limiter = _redis_limiter(clients[0], 10, 1)  # one request every 0.1 s
    for _ in range(10):
        assert (await limiter.acquire("a")).allowed
    assert not (await limiter.acquire("a")).allowed
    await asyncio.sleep(0.15)
    assert (await limiter.acquire("a")).allowed


async def test_without_redis_it_limits_in_memory_and_comes_back(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    client = RedisClient(server.url, timeout_seconds=0.3, max_connections=4)
    limiter = RedisRateLimiter(
        client, 3, 60, fallback=MemoryRateLimiter(3, 60), fallback_seconds=0.5
    )
    try:
        assert (await limiter.acquire("a")).allowed
        server.kill()
        started = time.monotonic()
        decisions = [await limiter.acquire("b") for _ in range(4)]
        # One call waits for the dead Redis; the rest are decided in memory at once.
        assert time.monotonic() - started < 1.0
        assert [d.allowed for d in decisions] == [True, True, True, False]
        server.start()
        await asyncio.sleep(0.6)
        shared = await limiter.acquire("a")  # back on Redis: "a" used one of its 3 before
        assert (shared.allowed, shared.remaining) == (True, 1)
    finally:
        await client.close()
        server.stop()
