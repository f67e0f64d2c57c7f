"""The idempotency store: replay, mismatch, in-flight, errors, expiry and its memory bound."""

from __future__ import annotations

import asyncio

import pytest

from app.core.exceptions import AppError, Conflict, ServiceUnavailable
from app.services.idempotency import (
    REPLAYED_HEADER,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    IdempotencyStore,
    Outcome,
)
from tests.fakes import FakeClock


@pytest.fixture
def store(clock: FakeClock) -> IdempotencyStore:
    return IdempotencyStore(ttl_seconds=100, max_keys=3, clock=clock)


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
    release = asyncio.Event()

    async def slow() -> Outcome:
        await release.wait()
        return Outcome(201, {})

    fp = store.fingerprint({})
    first = asyncio.create_task(store.run("c", "k", fp, slow))
    await asyncio.sleep(0)
    with pytest.raises(IdempotencyKeyInFlight) as err:
        await store.run("c", "k", fp, slow)
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
    async def hang() -> Outcome:
        await asyncio.sleep(10)
        raise AssertionError

    fp = store.fingerprint({})
    task = asyncio.create_task(store.run("c", "k", fp, hang))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(store) == 0


async def test_keys_expire_after_the_ttl(store: IdempotencyStore, clock: FakeClock) -> None:
    op = Counter()
    fp = store.fingerprint({})
    await store.run("c", "k", fp, op)
    clock.now = 99
    assert (await store.run("c", "k", fp, op))[1] is True
    clock.now = 100
    assert (await store.run("c", "k", fp, op))[1] is False
    assert op.calls == 2


async def test_memory_is_bounded_by_max_keys(store: IdempotencyStore) -> None:
    op = Counter()
    fp = store.fingerprint({})
    for key in ("a", "b", "c", "d", "e"):
        await store.run("c", key, fp, op)
    assert len(store) == 3
    # The oldest keys were forgotten first.
    assert (await store.run("c", "e", fp, op))[1] is True
    assert (await store.run("c", "a", fp, op))[1] is False
