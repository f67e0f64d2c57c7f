"""ScoringService over a real one-worker pool: jobs run, publish progress, and expire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.core.exceptions import NotFound, Overloaded, ValidationFailed
from app.redis.client import RedisClient
from app.redis.jobs import RedisJobs
from app.services.process_pool import ProcessPool
from app.services.scoring.service import JOBS_TOPIC, MemoryJobs, ScoringJob, ScoringService
from app.services.scoring.worker import ScoringLimits, warm_up
from tests.fakes import FakeClock

BODY = json.dumps(
    {
        "records": [{"id": str(i), "features": {"x": i, "y": 10 - i}} for i in range(250)],
        "weights": {"x": 1.0, "y": 0.5},
        "method": "zscore",
    }
).encode()


@pytest.fixture
async def pool() -> AsyncIterator[ProcessPool]:
    process_pool = ProcessPool(workers=1, queue_limit=2, task_timeout=20, warm_up=warm_up)
    await process_pool.start()
    yield process_pool
    await process_pool.close()


@pytest.fixture
def published() -> list[tuple[str, Any]]:
    return []


@pytest.fixture
async def service(
    pool: ProcessPool, clock: FakeClock, published: list[tuple[str, Any]]
) -> AsyncIterator[ScoringService]:
    async def publish(topic: str, data: Any) -> None:
        published.append((topic, data))

    scoring = ScoringService(
        pool,
        ScoringLimits(max_records=1000, max_features=10),
        jobs=MemoryJobs(ttl_seconds=60, clock=clock),
        chunk_records=100,
        publish=publish,
    )
    yield scoring
    await scoring.close()


async def _finished(service: ScoringService, job_id: str) -> dict[str, Any]:
    return await _finished_as(service, job_id, "ip:1")


async def _finished_as(service: ScoringService, job_id: str, owner: str) -> dict[str, Any]:
    for task in list(service._tasks):
        await task
    job = await service.get_job(job_id, owner=owner)
    assert job.status == "done", job.error
    assert job.result is not None
    return job.result


async def test_a_job_scores_in_chunks_and_publishes_its_progress(
    service: ScoringService, published: list[tuple[str, Any]]
) -> None:
    job = await service.submit_job(service.reserve(), BODY, owner="ip:1")
    result = await _finished(service, job.id)
    assert result["count"] == 250
    assert result == await service.score(service.reserve(), BODY)
    progress = [data["progress"] for topic, data in published if topic == JOBS_TOPIC]
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert len(progress) >= 4  # running, three chunks of 100, done


async def test_an_invalid_body_fails_at_submission_with_its_errors(
    service: ScoringService,
) -> None:
    with pytest.raises(ValidationFailed) as failed:
        await service.submit_job(service.reserve(), b'{"records": []}', owner="ip:1")
    assert failed.value.errors
    assert isinstance(service.jobs, MemoryJobs)
    assert len(service.jobs) == 0


async def test_a_finished_job_is_forgotten_after_its_ttl(
    service: ScoringService, clock: FakeClock
) -> None:
    job = await service.submit_job(service.reserve(), BODY, owner="ip:1")
    await _finished(service, job.id)
    clock.now += 61
    with pytest.raises(NotFound):
        await service.get_job(job.id, owner="ip:1")


async def test_a_full_pool_sheds_with_retry_after(service: ScoringService) -> None:
    slots = [service.reserve() for _ in range(3)]
    with pytest.raises(Overloaded) as shed:
        service.reserve()
    assert shed.value.headers == {"Retry-After": "1"}
    for slot in slots:
        slot.abandon()


async def test_a_job_is_read_only_by_its_submitter(service: ScoringService) -> None:
    job = await service.submit_job(service.reserve(), BODY, owner="user:7")
    await _finished_as(service, job.id, "user:7")
    with pytest.raises(NotFound):
        await service.get_job(job.id, owner="ip:203.0.113.9")


async def test_a_job_saved_by_one_replica_is_read_by_another_until_its_ttl(
    redis_url: str,
) -> None:
    clients = [RedisClient(redis_url, timeout_seconds=5.0, max_connections=4) for _ in range(2)]
    here, there = (RedisJobs(client, ttl_seconds=0.5) for client in clients)
    job = ScoringJob(id="abc", owner="user:1", status="done", progress=1.0, result={"count": 3})
    await here.save(job)
    loaded = await there.load("abc")
    assert loaded is not None
    assert loaded.to_json() == job.to_json()
    await asyncio.sleep(0.6)
    assert await there.load("abc") is None
    for client in clients:
        await client.close()
