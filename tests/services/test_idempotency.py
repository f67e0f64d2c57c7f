"""The idempotency store over both backends (memory, a real redis-server): replay, mismatch,
in-flight, errors; and each backend's expiry and bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.core.exceptions import (
    AppError,
    Conflict,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    ServiceUnavailable,
)
from app.memory.idempotency import MemoryKeys
from app.redis.client import RedisClient
from app.redis.idempotency import RedisKeys
from app.services.idempotency import REPLAYED_HEADER, IdempotencyStore
from app.stores.idempotency import KeyBackend, Outcome
from tests.fakes import FakeClock

SECRET = b"s" * 32


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[IdempotencyStore]:
    client = None
    backend: KeyBackend
    if request.param == "memory":
        backend = MemoryKeys(ttl_seconds=100, max_keys=1000)
    else:
        client = RedisClient(
            request.getfixturevalue("redis_url"), timeout_seconds=5.0, max_connections=8
        )
        backend = RedisKeys(client, ttl_seconds=100)
    yield IdempotencyStore(backend, secret=SECRET, in_flight_seconds=30)
    if client is not None:
        await client.close()


@pytest.fixture
def memory_keys(clock: FakeClock) -> MemoryKeys:
    return MemoryKeys(ttl_seconds=100, max_keys=3, clock=clock)


@pytest.fixture
def memory_store(memory_keys: MemoryKeys) -> IdempotencyStore:
    return IdempotencyStore(memory_keys, secret=SECRET, in_flight_seconds=30)


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> Outcome:
        self.calls += 1
        return Outcome(201, {"n": self.calls}, {"Location": f"/x/{self.calls}"})


async def test_repeat_replays_the_first_outcome_without_running_again(
    store: IdempotencyStore,
) -> None:
    op = Counter()
    fp = store.fingerprint({"a": 1})
    first, replayed = await store.run("c", "k", fp, op)
    assert (first.body, replayed) == ({"n": 1}, False)
    second, replayed = await store.run("c", "k", fp, op)
    assert (second.status, second.body, replayed) == (201, {"n": 1}, True)
    assert second.headers["Location"] == "/x/1"
    assert second.headers[REPLAYED_HEADER] == "true"
    assert op.calls == 1


async def test_fingerprint_ignores_key_order(store: IdempotencyStore) -> None:
    assert store.fingerprint({"a": 1, "b": 2}) == store.fingerprint({"b": 2, "a": 1})
    assert store.fingerprint({"a": 1}) != store.fingerprint({"a": 2})


async def test_same_key_other_body_is_refused(store: IdempotencyStore) -> None:
    op = Counter()
    await store.run("c", "k", store.fingerprint({"a": 1}), op)
    with pytest.raises(IdempotencyKeyReused) as err:
        await store.run("c", "k", store.fingerprint({"a": 2}), op)
    assert err.value.status == 422
    assert op.calls == 1


async def test_keys_are_scoped_per_client(store: IdempotencyStore) -> None:
    op = Counter()
    fp = store.fingerprint({})
    await store.run("alice", "k", fp, op)
    _, replayed = await store.run("bob", "k", fp, op)
    assert not replayed
    assert op.calls == 2


async def test_same_key_while_in_flight_is_a_conflict(store: IdempotencyStore) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> Outcome:
        started.set()
        await release.wait()
        return Outcome(201, {})

    fp = store.fingerprint({})
    first = asyncio.create_task(store.run("c", "k", fp, slow))
    # Once the first request runs, it holds the key. (Yielding once is not enough with Redis:
    # the claim is a round trip, and a second request could claim first and then wait here
    # for a release that never comes - a hang CI once ran into.)
    await asyncio.wait_for(started.wait(), 5)
    with pytest.raises(IdempotencyKeyInFlight) as err:
        await asyncio.wait_for(store.run("c", "k", fp, slow), 5)
    assert err.value.status == 409
    assert err.value.headers["Retry-After"] == "1"
    release.set()
    assert (await first)[1] is False


async def test_client_errors_are_stored_and_replayed(store: IdempotencyStore) -> None:
    calls = 0

    async def taken() -> Outcome:
        nonlocal calls
        calls += 1
        raise Conflict("taken")

    fp = store.fingerprint({})
    with pytest.raises(Conflict):
        await store.run("c", "k", fp, taken)
    with pytest.raises(AppError) as err:
        await store.run("c", "k", fp, taken)
    assert (err.value.status, err.value.detail) == (409, "taken")
    assert err.value.headers[REPLAYED_HEADER] == "true"
    assert calls == 1


@pytest.mark.parametrize("error", [ServiceUnavailable("down"), RuntimeError("crash")])
async def test_server_errors_are_not_stored(store: IdempotencyStore, error: Exception) -> None:
    async def failing() -> Outcome:
        raise error

    fp = store.fingerprint({})
    with pytest.raises(type(error)):
        await store.run("c", "k", fp, failing)
    op = Counter()
    _, replayed = await store.run("c", "k", fp, op)
    assert not replayed
    assert op.calls == 1


async def test_cancelled_request_frees_its_key(store: IdempotencyStore) -> None:
    started = asyncio.Event()

    async def hang() -> Outcome:
        started.set()
        await asyncio.sleep(10)
        raise AssertionError

    fp = store.fingerprint({})
    task = asyncio.create_task(store.run("c", "k", fp, hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    op = Counter()
    assert (await store.run("c", "k", fp, op))[1] is False
    assert op.calls == 1


async def test_two_replicas_share_keys(redis_url: str) -> None:
    clients = [RedisClient(redis_url, timeout_seconds=5.0, max_connections=8) for _ in range(2)]
    first, second = (
        IdempotencyStore(RedisKeys(c, ttl_seconds=100), secret=SECRET, in_flight_seconds=30)
        for c in clients
    )
    started, release = asyncio.Event(), asyncio.Event()
    op = Counter()

    async def slow() -> Outcome:
        started.set()
        await release.wait()
        return await op()

    fp = first.fingerprint({"a": 1})
    assert fp == second.fingerprint({"a": 1})  # one secret: one fingerprint everywhere
    running = asyncio.create_task(first.run("c", "k", fp, slow))
    await asyncio.wait_for(started.wait(), 5)  # A holds the key (its claim is a round trip)
    with pytest.raises(IdempotencyKeyInFlight):
        await asyncio.wait_for(second.run("c", "k", fp, slow), 5)
    release.set()
    await running
    outcome, replayed = await second.run("c", "k", fp, slow)
    assert (outcome.body, replayed, op.calls) == ({"n": 1}, True, 1)
    for client in clients:
        await client.close()


async def test_redis_keys_expire_after_the_ttl(redis_url: str) -> None:
    client = RedisClient(redis_url, timeout_seconds=5.0, max_connections=8)
    store = IdempotencyStore(
        RedisKeys(client, ttl_seconds=0.3), secret=SECRET, in_flight_seconds=30
    )
    op = Counter()
    fp = store.fingerprint({})
    await store.run("c", "k", fp, op)
    assert (await store.run("c", "k", fp, op))[1] is True
    await asyncio.sleep(0.4)
    assert (await store.run("c", "k", fp, op))[1] is False
    await client.close()


async def test_keys_expire_after_the_ttl(memory_store: IdempotencyStore, clock: FakeClock) -> None:
    store = memory_store
    op = Counter()
    fp = store.fingerprint({})
    await store.run("c", "k", fp, op)
    clock.now = 99
    assert (await store.run("c", "k", fp, op))[1] is True
    clock.now = 100
    assert (await store.run("c", "k", fp, op))[1] is False
    assert op.calls == 2


async def test_memory_is_bounded_by_max_keys(
    memory_store: IdempotencyStore, memory_keys: MemoryKeys
) -> None:
    store = memory_store
    op = Counter()
    fp = store.fingerprint({})
    for key in ("a", "b", "c", "d", "e"):
        await store.run("c", key, fp, op)
    assert len(memory_keys) == 3
    # The oldest keys were forgotten first.
    assert (await store.run("c", "e", fp, op))[1] is True
    assert (await store.run("c", "a", fp, op))[1] is False
