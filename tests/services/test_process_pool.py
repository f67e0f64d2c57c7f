"""The process pool with real worker processes: admission, timeouts, a killed worker, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from app.core import deadline
from app.core.exceptions import DeadlineExceeded, Overloaded, TaskTimedOut, WorkerCrashed
from app.services.process_pool import ProcessPool
from app.services.scoring.worker import warm_up
from tests.worker_probe import top_level_modules


def nap(seconds: float) -> int:
    """Runs in a worker: sleep (a stand-in for CPU work) and say which process ran it."""
    time.sleep(seconds)
    return os.getpid()


def die() -> None:
    """Runs in a worker: end the worker process at once, as a crash would."""
    os._exit(1)


def _wait_until_dead(pid: int) -> None:
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _wait_until_collected(pid: int) -> None:
    """Until no process has `pid`, not even a zombie: its parent has collected it."""
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits for its parent to collect it (and may be collected
    # between the two looks).
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between the open and the read
        return False


@pytest.fixture
async def pool() -> AsyncIterator[ProcessPool]:
    # A generous limit: a task that meets a killed worker runs again on a fresh one, which a
    # busy machine may take seconds to start. Tests of the limit give their own.
    process_pool = ProcessPool(workers=1, queue_limit=1, task_timeout=30, warm_up=os.getpid)
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
    start = time.process_time()  # CPU time: what else the machine runs does not count
    with pytest.raises(Overloaded):
        pool.reserve()
    assert time.process_time() - start < 0.05
    await asyncio.gather(*running)
    assert pool.in_flight == 0
    pool.reserve().abandon()  # capacity is back
    assert pool.in_flight == 0


async def test_a_timed_out_task_keeps_its_place_until_the_worker_is_done(pool: ProcessPool) -> None:
    with pytest.raises(TaskTimedOut):
        await pool.reserve().run(nap, 0.6, time_limit=0.1)
    assert pool.in_flight == 1  # the worker is still busy with it
    # Given back once the nap ends (polled: a busy machine may run it late).
    for _ in range(200):
        if pool.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert pool.in_flight == 0


async def test_a_task_whose_worker_is_killed_runs_again_on_a_fresh_pool(pool: ProcessPool) -> None:
    victim = pool.worker_pids()[0]
    task = asyncio.create_task(pool.reserve().run(nap, 3))
    await asyncio.sleep(0.3)
    os.kill(victim, signal.SIGKILL)
    pid = await task  # a pure computation: run once more where a worker is alive
    assert pid != victim
    assert pool.restarts == 1
    assert pool.in_flight == 0


async def test_a_task_that_kills_its_worker_twice_fails_cleanly(pool: ProcessPool) -> None:
    with pytest.raises(WorkerCrashed) as crashed:
        await pool.reserve().run(die)
    assert "replaced" in crashed.value.detail
    assert pool.restarts == 2
    assert pool.in_flight == 0
    assert await pool.reserve().run(nap, 0) != os.getpid()  # the pool works again


async def test_a_worker_killed_while_idle_never_fails_the_next_task(pool: ProcessPool) -> None:
    # The chaos review's finding: the next, unrelated task answered 500, 3 times out of 3.
    for _ in range(3):
        victim = pool.worker_pids()[0]
        with contextlib.suppress(ProcessLookupError):  # already gone is dead enough
            os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(_wait_until_dead, victim)
        assert await pool.reserve().run(nap, 0) != victim
    assert pool.in_flight == 0


async def test_a_dead_workers_pid_is_never_listed_nor_signalled(pool: ProcessPool) -> None:
    # The executor keeps a dead worker in its table until the pool is replaced at the next
    # task, and once the worker is collected its pid may be handed to any new process: the
    # kill-a-worker drill used to SIGKILL that pid, whatever it had become.
    victim = await pool.reserve().run(nap, 0)
    os.kill(victim, signal.SIGKILL)
    await asyncio.to_thread(_wait_until_collected, victim)
    assert not os.path.exists(f"/proc/{victim}")
    assert pool.worker_pids() == []
    assert pool.stats()["alive"] == 0
    assert pool.degraded  # fewer workers alive than configured, until the next task
    assert pool.kill_worker() is None  # nothing alive to kill, and no stranger signalled
    assert await pool.reserve().run(nap, 0) != victim  # the next task replaces the pool
    assert not pool.degraded


async def test_close_leaves_no_child_processes() -> None:
    process_pool = ProcessPool(workers=2, queue_limit=0, task_timeout=5, warm_up=os.getpid)
    await process_pool.start()
    pids = process_pool.worker_pids()
    assert len(pids) == 2
    await process_pool.close()
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(Overloaded):
        process_pool.reserve()


async def test_without_warm_up_at_start_the_first_task_starts_every_worker() -> None:
    pool = ProcessPool(
        workers=2, queue_limit=0, task_timeout=30, warm_up=os.getpid, warm_at_start=False
    )
    await pool.start()
    try:
        # Nothing started, and nothing missing: health does not call it degraded.
        assert pool.worker_pids() == []
        assert pool.stats()["started"] is False
        assert not pool.degraded
        pid = await pool.reserve().run(nap, 0)
        assert pid in pool.worker_pids()
        assert len(pool.worker_pids()) == 2  # both, for the tasks that follow
        assert pool.stats()["started"] is True
        assert not pool.degraded
    finally:
        await pool.close()


async def test_a_task_gets_only_what_its_request_has_left(pool: ProcessPool) -> None:
    budget, token = deadline.start(0.2)
    try:
        # Cut short by the request's deadline (not its own 5 s limit): the request's time ran
        # out, which is not the pool failing (no TaskTimedOut for the breaker to count).
        with pytest.raises(DeadlineExceeded):
            await pool.reserve().run(nap, 0.6)
        await asyncio.sleep(0.6)
        # Almost nothing left: not even started, and its place is given back at once. (The
        # first nap may still hold its worker on a busy machine: compare with before.)
        held = pool.in_flight
        budget.at = asyncio.get_running_loop().time() + 0.01
        with pytest.raises(DeadlineExceeded):
            await pool.reserve().run(nap, 0)
        assert pool.in_flight == held
    finally:
        deadline.end(token)


async def test_a_queued_task_whose_request_is_gone_never_runs() -> None:
    pool = ProcessPool(workers=1, queue_limit=4, task_timeout=5, warm_up=os.getpid)
    await pool.start()
    try:
        # One running and two handed to the worker's queue already (the executor prefetches
        # workers + 1), one still waiting here: the last can be withdrawn.
        ahead = [asyncio.create_task(pool.reserve().run(nap, 0.3)) for _ in range(3)]
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(pool.reserve().run(nap, 0.3))
        await asyncio.sleep(0.05)
        waiting.cancel()  # the client went away, or the request timed out (asyncio's
        # wrap_future passes the cancellation on to the executor's future)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.gather(*ahead)
        await asyncio.sleep(0.05)
        assert pool.in_flight == 0  # it never ran: its place came back with the others
    finally:
        await pool.close()


async def test_a_warm_worker_holds_the_libraries_of_the_work_and_none_of_the_web_process() -> None:
    # Each worker is an interpreter of its own: what it imports beyond numpy and pandas costs
    # start-up time and memory in every one of them (the initializer's module once pulled in
    # logging, metrics and tracing).
    pool = ProcessPool(workers=1, queue_limit=0, task_timeout=60, warm_up=warm_up)
    await pool.start()
    try:
        loaded = set(await pool.reserve().run(top_level_modules))
    finally:
        await pool.close()
    assert {"numpy", "pandas"} <= loaded
    web_process_only = {
        "fastapi", "starlette", "uvicorn", "structlog", "prometheus_client", "opentelemetry",
        "redis", "tenacity", "jose", "passlib",
    }  # fmt: skip
    assert loaded & web_process_only == set()
