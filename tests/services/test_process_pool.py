"""The process pool with real worker processes: admission, timeouts, a killed worker, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from app.core.exceptions import Overloaded, TaskTimedOut, WorkerCrashed
from app.services.process_pool import ProcessPool


def nap(seconds: float) -> int:
    """Runs in a worker: sleep (a stand-in for CPU work) and say which process ran it."""
    time.sleep(seconds)
    return os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits for its parent to collect it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


@pytest.fixture
async def pool() -> AsyncIterator[ProcessPool]:
    process_pool = ProcessPool(workers=1, queue_limit=1, task_timeout=5, warm_up=os.getpid)
    await process_pool.start()
    yield process_pool
    await process_pool.close()


async def test_runs_in_another_process(pool: ProcessPool) -> None:
    pid = await pool.reserve().run(nap, 0)
    assert pid != os.getpid()
    assert pid in pool.worker_pids()
    assert pool.in_flight == 0


async def test_past_workers_plus_queue_new_work_is_refused_at_once(pool: ProcessPool) -> None:
    running = [asyncio.create_task(pool.reserve().run(nap, 0.5)) for _ in range(pool.capacity)]
    await asyncio.sleep(0)
    start = time.monotonic()
    with pytest.raises(Overloaded):
        pool.reserve()
    assert time.monotonic() - start < 0.05
    await asyncio.gather(*running)
    assert pool.in_flight == 0
    pool.reserve().abandon()  # capacity is back
    assert pool.in_flight == 0


async def test_a_timed_out_task_keeps_its_place_until_the_worker_is_done(pool: ProcessPool) -> None:
    with pytest.raises(TaskTimedOut):
        await pool.reserve().run(nap, 0.6, time_limit=0.1)
    assert pool.in_flight == 1  # the worker is still busy with it
    await asyncio.sleep(0.8)
    assert pool.in_flight == 0


async def test_a_killed_worker_fails_its_task_and_the_pool_recovers(pool: ProcessPool) -> None:
    victim = pool.worker_pids()[0]
    task = asyncio.create_task(pool.reserve().run(nap, 3))
    await asyncio.sleep(0.3)
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(WorkerCrashed):
        await task
    assert pool.restarts == 1
    pid = await pool.reserve().run(nap, 0)
    assert pid != victim
    assert pool.in_flight == 0


async def test_close_leaves_no_child_processes() -> None:
    process_pool = ProcessPool(workers=2, queue_limit=0, task_timeout=5, warm_up=os.getpid)
    await process_pool.start()
    pids = process_pool.worker_pids()
    assert len(pids) == 2
    await process_pool.close()
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(Overloaded):
        process_pool.reserve()
