"""ScoringService over a real one-worker pool: jobs run, publish progress, and expire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.core.exceptions import Gone, NotFound, Overloaded, ValidationFailed
from app.memory.jobs import MemoryJobs
from app.redis.client import RedisClient
from app.redis.jobs import RedisJobs
from app.services.process_pool import ProcessPool
from app.services.scoring.service import JOBS_TOPIC, ScoringService
from app.services.scoring.worker import ScoringLimits, warm_up
from app.stores.jobs import ResultBounds, ScoringJob
from tests.fakes import FakeClock

BOUNDS = ResultBounds(max_bytes=64_000, max_bytes_per_client=16_000)
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
        jobs=MemoryJobs(ttl_seconds=60, bounds=BOUNDS, clock=clock),
        chunk_records=100,
        max_result_bytes=BOUNDS.max_bytes_per_client,
        publish=publish,
    )
    yield scoring
    await scoring.close()


async def _finished(service: ScoringService, job_id: str) -> dict[str, Any]:
    return await _finished_as(service, job_id, "ip:1")


async def _finished_as(service: ScoringService, job_id: str, owner: str) -> dict[str, Any]:
    for task in list(service._tasks):
        await task
    job, result = await service.get_job(job_id, owner=owner)
    assert job.status == "done", job.error
    assert result is not None
    assert job.result_bytes == len(result)
    decoded: dict[str, Any] = json.loads(result)
    return decoded


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
    here, there = (RedisJobs(client, ttl_seconds=0.5, bounds=BOUNDS) for client in clients)
    job = ScoringJob(id="abc", owner="user:1", status="done", progress=1.0, result_bytes=11)
    await here.keep_result("abc", "user:1", b'{"count":3}')
    await here.save(job)
    loaded = await there.load("abc")
    assert loaded is not None
    assert loaded.to_json() == job.to_json()
    assert await there.load_result("abc") == b'{"count":3}'
    await asyncio.sleep(0.6)
    assert await there.load("abc") is None
    assert await there.load_result("abc") is None
    for client in clients:
        await client.close()


async def test_a_result_too_large_to_keep_is_refused_at_submission(
    service: ScoringService,
) -> None:
    records = [{"id": f"record-{i:05d}", "features": {"x": i}} for i in range(1000)]
    body = json.dumps({"records": records, "weights": {"x": 1.0}}).encode()
    with pytest.raises(ValidationFailed) as refused:
        await service.submit_job(service.reserve(), body, owner="ip:1")
    assert refused.value.errors[0]["loc"] == ["body", "top_k"]
    assert "top_k" in refused.value.errors[0]["msg"]
    # The same records with a top_k that fits are accepted and kept.
    fits = json.dumps({"records": records, "weights": {"x": 1.0}, "top_k": 10}).encode()
    job = await service.submit_job(service.reserve(), fits, owner="ip:1")
    assert len((await _finished(service, job.id))["results"]) == 10


async def test_an_evicted_result_is_gone_not_missing(service: ScoringService) -> None:
    first = await service.submit_job(service.reserve(), BODY, owner="ip:1")
    await _finished(service, first.id)
    # Each result of 250 records is ~13 kB: the second pushes the first past 16 kB per client.
    second = await service.submit_job(service.reserve(), BODY, owner="ip:1")
    await _finished(service, second.id)
    with pytest.raises(Gone) as gone:
        await service.get_job(first.id, owner="ip:1")
    assert "evicted" in gone.value.detail
