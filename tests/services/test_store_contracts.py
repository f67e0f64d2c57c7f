"""The smaller seams' contracts, against both backends (memory, a real redis-server): scoring
jobs, logged-out tokens and login failures behave the same whichever store keeps them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from app.memory.jobs import MemoryJobs
from app.memory.login_throttle import MemoryFailures
from app.memory.revocations import MemoryRevocations
from app.redis.client import RedisClient
from app.redis.jobs import RedisJobs
from app.redis.login_throttle import RedisFailures
from app.redis.revocations import RedisRevocations
from app.stores.jobs import JobStore, ResultBounds, ScoringJob
from app.stores.login_failures import FailureBook
from app.stores.revocations import Revocations


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[RedisClient | None]:
    if request.param == "memory":
        yield None
        return
    client = RedisClient(
        request.getfixturevalue("redis_url"), timeout_seconds=5.0, max_connections=8
    )
    yield client
    await client.close()


BOUNDS = ResultBounds(max_bytes=1000, max_bytes_per_client=400, max_results=5)


def _jobs(client: RedisClient | None, ttl: float) -> JobStore:
    if client is None:
        return MemoryJobs(ttl_seconds=ttl, bounds=BOUNDS)
    return RedisJobs(client, ttl_seconds=ttl, bounds=BOUNDS)


def _revocations(client: RedisClient | None) -> Revocations:
    return MemoryRevocations() if client is None else RedisRevocations(client)


async def test_a_job_is_saved_updated_and_read_back(backend: RedisClient | None) -> None:
    jobs = _jobs(backend, ttl=60)
    job = ScoringJob(id="j1", owner="user:1")
    await jobs.save(job)
    loaded = await jobs.load("j1")
    assert loaded is not None
    assert (loaded.status, loaded.owner, loaded.progress) == ("queued", "user:1", 0.0)
    await jobs.keep_result("j1", "user:1", b'{"count":2,"results":[]}')
    job.status, job.progress, job.result_bytes = "done", 1.0, 24
    job.finished_at = "2026-11-26T00:00:00+00:00"
    await jobs.save(job)
    loaded = await jobs.load("j1")
    assert loaded is not None
    assert loaded.to_json() == job.to_json()
    assert await jobs.load_result("j1") == b'{"count":2,"results":[]}'
    assert await jobs.load("unknown") is None
    assert await jobs.load_result("unknown") is None


async def test_results_are_evicted_oldest_first_past_a_clients_share_then_the_total(
    backend: RedisClient | None,
) -> None:
    jobs = _jobs(backend, ttl=60)
    for n in range(3):  # 3 x 150 bytes: past the client's 400, its oldest goes
        await jobs.keep_result(f"a{n}", "ip:a", bytes([97 + n]) * 150)
    assert await jobs.load_result("a0") is None
    assert await jobs.load_result("a1") == b"b" * 150
    assert await jobs.load_result("a2") == b"c" * 150
    for n in range(3):  # 300 + 3 x 250: past the 1,000 in all, the oldest of anyone's go
        await jobs.keep_result(f"{n}", f"ip:{n}", b"z" * 250)
    kept = [job_id for job_id in ("a1", "a2", "0", "1", "2") if await jobs.load_result(job_id)]
    assert kept == ["a2", "0", "1", "2"]
    for n in range(3, 7):  # more than 5 results: the oldest go, whatever their size
        await jobs.keep_result(f"{n}", f"ip:{n}", b"s")
    kept = [str(n) for n in range(7) if await jobs.load_result(str(n))]
    assert kept == ["2", "3", "4", "5", "6"]


async def test_a_finished_job_is_forgotten_after_its_ttl(backend: RedisClient | None) -> None:
    jobs = _jobs(backend, ttl=0.3)
    await jobs.save(ScoringJob(id="j2", owner="user:1", status="failed", error="boom"))
    assert await jobs.load("j2") is not None
    await asyncio.sleep(0.4)
    assert await jobs.load("j2") is None


async def test_a_revoked_token_stays_revoked_and_others_do_not(
    backend: RedisClient | None,
) -> None:
    revocations = _revocations(backend)
    expires = int(time.time()) + 60
    assert await revocations.revoke("token-a", expires)
    assert await revocations.is_revoked("token-a")
    assert not await revocations.is_revoked("token-b")
    # A token that has expired anyway needs no entry, and is refused by its expiry instead.
    assert await revocations.revoke("token-c", int(time.time()) - 1)


def _failures(client: RedisClient | None, threshold: int) -> FailureBook:
    if client is None:
        return MemoryFailures(threshold, max_entries=100)
    return RedisFailures(client, kind="test", threshold=threshold)


async def test_failures_back_off_after_the_threshold_and_clear(
    backend: RedisClient | None,
) -> None:
    book = _failures(backend, threshold=2)
    assert await book.state("a") == (False, 0.0)
    await book.fail("a")
    known, wait = await book.state("a")
    assert known
    assert wait <= 0  # one failure: no back-off yet
    await book.fail("a")
    known, wait = await book.state("a")
    assert known
    assert 0 < wait <= 1.0  # the second: 1 s, then 2, 4, ...
    await book.fail("a")
    assert 1.0 < (await book.state("a"))[1] <= 2.0
    assert await book.state("b") == (False, 0.0)
    await book.clear("a")
    assert await book.state("a") == (False, 0.0)
