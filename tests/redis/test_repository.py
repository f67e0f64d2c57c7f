"""What only the Redis repository has to prove: two processes' clients racing on one dataset,
pages read without pulling the collection, and a Redis that is gone answered as a 503 error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from app.core.exceptions import DuplicateKey, StoreUnavailable, VersionMismatch
from app.redis.client import RedisClient
from app.redis.repository import RedisRepository
from app.stores.records import CollectionSpec, UniqueField
from tests.redis_server import RedisServer

PEOPLE = CollectionSpec(
    name="people",
    unique=(UniqueField("email", case_insensitive=True),),
    sortable=("id", "name"),
)


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[RedisRepository, RedisRepository]]:
    """Two repositories with their own connection pools on one Redis: two replicas."""
    clients = [RedisClient(redis_url, timeout_seconds=5.0, max_connections=16) for _ in range(2)]
    repos = (RedisRepository(clients[0]), RedisRepository(clients[1]))
    for repo in repos:
        repo.declare(PEOPLE)
    yield repos
    for client in clients:
        await client.close()


def _page_calls() -> float:
    value = REGISTRY.get_sample_value(
        "redis_command_duration_seconds_count", {"operation": "repository.page"}
    )
    return value or 0.0


async def test_one_email_raced_from_two_replicas_is_created_once(
    replicas: tuple[RedisRepository, RedisRepository],
) -> None:
    async def attempt(i: int) -> bool:
        try:
            await replicas[i % 2].create("people", {"email": f"RACE{i % 3}@x.io".lower()})
        except DuplicateKey:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(100)))
    # Three distinct emails, each created exactly once whatever replica won.
    assert sum(results) == 3
    assert await replicas[1].count("people") == 3


async def test_one_if_match_raced_from_two_replicas_wins_once(
    replicas: tuple[RedisRepository, RedisRepository],
) -> None:
    await replicas[0].create("people", {"email": "a@x.io", "name": "A"})

    async def attempt(i: int) -> bool:
        try:
            await replicas[i % 2].update(
                "people", 1, {"name": f"writer {i}"}, expected_versions={1}
            )
        except VersionMismatch:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(40)))
    assert sum(results) == 1
    record = await replicas[1].get("people", 1)
    assert record is not None
    assert record["version"] == 2


async def test_unconditional_updates_from_two_replicas_are_all_applied(
    replicas: tuple[RedisRepository, RedisRepository],
) -> None:
    await replicas[0].create("people", {"email": "a@x.io", "name": "A", "n": 0})

    async def bump(i: int) -> None:
        # A lost race is retried on fresh data: no update is lost.
        await replicas[i % 2].update("people", 1, {f"field{i}": i})

    await asyncio.gather(*(bump(i) for i in range(30)))
    record = await replicas[0].get("people", 1)
    assert record is not None
    assert record["version"] == 31
    assert all(record[f"field{i}"] == i for i in range(30))


async def test_a_transaction_that_lost_a_race_applies_nothing(
    replicas: tuple[RedisRepository, RedisRepository],
) -> None:
    first, second = replicas
    await first.create("people", {"email": "a@x.io", "name": "A"})
    with pytest.raises(VersionMismatch):
        async with first.transaction("people") as tx:
            await tx.update("people", 1, {"name": "from the transaction"})
            await tx.create("people", {"email": "b@x.io", "name": "B"})
            await second.update("people", 1, {"name": "from the other replica"})
    assert (await first.get("people", 1) or {})["name"] == "from the other replica"
    assert await first.find_unique("people", "email", "b@x.io") is None
    assert await first.count("people") == 1


async def test_an_unfiltered_page_is_one_script_call_at_any_size(
    replicas: tuple[RedisRepository, RedisRepository],
) -> None:
    repo = replicas[0]
    # 100 at a time: 3,000 at once would wait for the pool's 16 connections, and that wait
    # counts against each call's deadline (the last ones missed it on a busy machine).
    for start in range(0, 3000, 100):
        await asyncio.gather(
            *(repo.create("people", {"name": f"n{i:05d}"}) for i in range(start, start + 100))
        )
    before = _page_calls()
    page = await repo.list("people", sort="-name", skip=100, limit=50)
    assert _page_calls() - before == 1
    assert page.total == 3000
    assert [r["name"] for r in page.items] == [f"n{i:05d}" for i in range(2899, 2849, -1)]


async def test_a_redis_that_is_gone_is_a_store_unavailable_error_within_the_timeout(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    client = RedisClient(server.url, timeout_seconds=0.5, max_connections=4)
    repo = RedisRepository(client)
    repo.declare(PEOPLE)
    try:
        await repo.create("people", {"email": "a@x.io", "name": "A"})
        server.kill()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as raised:
            await repo.get("people", 1)
        assert time.monotonic() - started < 1.5
        assert raised.value.status == 503
        assert raised.value.headers["Retry-After"] == "1"
        # Back on the same port and directory: the acknowledged write is there (AOF) and the
        # pool reconnects without help.
        server.start()
        assert (await repo.get("people", 1) or {})["name"] == "A"
    finally:
        await client.close()
        server.stop()
