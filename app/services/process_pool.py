"""The process pool for CPU work, with admission control, per-task timeouts and self-repair.

- Admission: at most `workers + queue_limit` tasks are admitted at once; past that, `reserve`
  refuses at once (`Overloaded`: 503 with Retry-After) instead of letting work pile up. A slot
  is reserved before the request body is even read, so a flood cannot fill memory with bodies.
- Timeout: a task that overruns is answered as timed out, but a running process cannot be
  interrupted, so its slot stays taken until the worker really finishes: admission stays honest.
- Repair: a worker that dies (SIGKILL, out of memory) breaks a `ProcessPoolExecutor` for good:
  a fresh pool replaces it, and the tasks it held (pure computations) run once more there; a
  task whose pool breaks a second time fails with `WorkerCrashed`.
- Workers are started with `spawn` (a clean interpreter, safe with the event loop's threads)
  and each runs the `warm_up` function it was given, so the first request does not pay for
  importing the libraries the work needs. That happens at start-up, or with
  `warm_at_start=False` when the first task arrives (the task then waits for it).
- Orphans: each worker watches its parent and exits when it is gone, so a server killed with
  SIGKILL (which runs no clean-up) leaves no worker processes behind
  (`app/services/worker_start.py`, a module that imports nothing else a worker would load).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from opentelemetry.trace import SpanKind, Tracer
from prometheus_client import Counter, Gauge

from app.core import deadline
from app.core.dependency import Dependency
from app.core.exceptions import (
    DeadlineExceeded,
    Overloaded,
    ServiceUnavailable,
    TaskTimedOut,
    WorkerCrashed,
)
from app.core.faults import InjectedFault
from app.core.logging import get_logger
from app.core.task_tracing import context_carrier, traced_task
from app.services.worker_start import exit_with_parent

log = get_logger(__name__)

# A task is not started with less than this left of its request's time: it could not finish.
MIN_TASK_SECONDS = 0.05

T = TypeVar("T")

POOL_TASKS = Counter(
    "process_pool_tasks_total",
    "Tasks submitted to the process pool, by outcome.",
    ["outcome"],  # ok, error, timeout, crashed, rejected
)
POOL_IN_FLIGHT = Gauge(
    "process_pool_tasks_in_flight",
    "Tasks admitted and not yet finished (running or queued).",
    multiprocess_mode="livesum",
)
POOL_QUEUE_DEPTH = Gauge(
    "process_pool_queue_depth",
    "Admitted tasks waiting for a free worker.",
    multiprocess_mode="livesum",
)
POOL_RESTARTS = Counter(
    "process_pool_restarts_total", "Process pools replaced after a worker died."
)


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class PoolSlot:
    """One admitted task's place in the pool.

    Run one task with `run`; the place is given back when the worker is done with it. If the
    task is never submitted (the request body could not be read, say), call `abandon`, or hold
    the slot in a `with` block, which abandons it on the way out.
    """

    def __init__(self, pool: ProcessPool) -> None:
        self._pool = pool
        self._submitted = False
        self._freed = False

    def _free(self) -> None:
        if not self._freed:
            self._freed = True
            self._pool._release()

    def abandon(self) -> None:
        """Give the place back if no task was submitted with it (safe to call in `finally`)."""
        if not self._submitted:
            self._free()

    def __enter__(self) -> PoolSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abandon()

    async def run(self, fn: Callable[..., T], *args: Any, time_limit: float | None = None) -> T:
        """Run `fn(*args)` in a worker (once per slot), through the pool's dependency pipeline
        if it has one."""
        if self._submitted:
            raise RuntimeError("a pool slot runs one task")
        self._submitted = True
        tracer = self._pool.tracer
        if tracer is None:
            return await self._through_pipeline(fn, args, time_limit)
        with tracer.start_as_current_span(
            f"process_pool {getattr(fn, '__name__', 'task')}", kind=SpanKind.INTERNAL
        ):
            return await self._through_pipeline(fn, args, time_limit)

    async def _through_pipeline(
        self, fn: Callable[..., T], args: tuple[Any, ...], time_limit: float | None
    ) -> T:
        dependency = self._pool.dependency
        if dependency is None:
            return await self._pool._run(self, fn, args, time_limit)
        started = False

        def start(_: float) -> Awaitable[T]:
            # The task keeps its own limits (`_run`, which gives its place back however it
            # ends): the pipeline adds the breaker, the drills and the metrics.
            nonlocal started
            started = True
            return self._pool._run(self, fn, args, time_limit)

        try:
            return await dependency.call(start)
        except BaseException as exc:
            if not started:
                self._free()  # refused (breaker, deadline) or failed by a drill: never ran
            if isinstance(exc, InjectedFault):
                raise ServiceUnavailable(
                    "The scoring workers did not answer (a drill); retry shortly.",
                    headers={"Retry-After": "1"},
                ) from None
            raise


class ProcessPool:
    """A `ProcessPoolExecutor` owned by the lifespan, with the rules in the module docstring."""

    def __init__(
        self,
        workers: int,
        queue_limit: int,
        task_timeout: float,
        *,
        warm_up: Callable[[], int] | None = None,
        warm_at_start: bool = True,
        dependency: Dependency | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.dependency = dependency
        # With tracing on: a span around each task here, continued in the worker
        # (app/core/task_tracing.py) with its queue wait and its computation.
        self.tracer = tracer
        self.workers = workers
        self._warm_up = warm_up
        self._warm_at_start = warm_at_start
        # Whether the workers have been asked to start (at start-up, or by the first task).
        self._started_workers = False
        self.queue_limit = queue_limit
        self.task_timeout = task_timeout
        self.restarts = 0
        self._in_flight = 0
        self._executor: ProcessPoolExecutor | None = None
        self._retired: list[ProcessPoolExecutor] = []

    @property
    def capacity(self) -> int:
        """Tasks admitted at most at once: one per worker plus the queue."""
        return self.workers + self.queue_limit

    @property
    def in_flight(self) -> int:
        """Tasks admitted and not finished."""
        return self._in_flight

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=exit_with_parent,
        )

    async def start(self) -> None:
        """Start the workers and wait until each has run `warm_up` (a trivial task when none
        was given), or with `warm_at_start=False`, leave that to the first task."""
        self._executor = self._new_executor()
        if self._warm_at_start:
            await asyncio.gather(*self._start_workers(self._executor))
        log.info(
            "process_pool_started",
            workers=self.workers,
            pids=self.worker_pids(),
            warm=self._started_workers,
        )

    def _start_workers(self, executor: ProcessPoolExecutor) -> list[asyncio.Future[int]]:
        # A spawn pool starts a process per task while none is idle: one warm-up per worker
        # starts them all, each importing what the work needs.
        self._started_workers = True
        warm_up = self._warm_up or os.getpid
        loop = asyncio.get_running_loop()
        return [loop.run_in_executor(executor, warm_up) for _ in range(self.workers)]

    async def close(self) -> None:
        """Stop every worker (cancelling queued tasks) and wait for the processes to exit."""
        executors = [e for e in (self._executor, *self._retired) if e is not None]
        self._executor = None
        self._retired.clear()
        for executor in executors:
            # Joining processes blocks: do it in a thread, not on the event loop.
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
        log.info("process_pool_stopped")

    def stats(self) -> dict[str, Any]:
        """Workers configured and alive, tasks in flight, capacity and restarts (for health)."""
        pids = self.worker_pids()
        return {
            "workers": self.workers,
            "pids": pids,
            "alive": len(pids),
            "in_flight": self._in_flight,
            "capacity": self.capacity,
            "restarts": self.restarts,
            "started": self._started_workers,
        }

    @property
    def degraded(self) -> bool:
        """Fewer workers alive than configured (once they were started), or no room for
        another task."""
        missing = self._started_workers and len(self.worker_pids()) < self.workers
        return missing or self._in_flight >= self.capacity

    def _live_workers(self) -> dict[int, BaseProcess]:
        # A worker that died stays in the executor's table until the pool is replaced (at the
        # next task), and once collected its pid can belong to any new process on the machine:
        # only workers still alive are ever listed, or signalled.
        processes: dict[int, BaseProcess] = getattr(self._executor, "_processes", None) or {}
        return {pid: process for pid, process in list(processes.items()) if process.is_alive()}

    def worker_pids(self) -> list[int]:
        """The pids of the current workers that are alive (for tests and health)."""
        return sorted(self._live_workers())

    async def probe(self) -> None:
        """A trivial task through the pool, outside its pipeline (the recovery probe): it
        answers once a worker is free and alive."""
        with self.reserve(count_rejection=False) as slot:
            await self._run(slot, os.getpid, (), None)

    def kill_worker(self) -> int | None:
        """SIGKILL one worker, as the kernel's OOM killer or a crash would (a drill): the pool
        is replaced when a task next meets it, and that task runs again on the new one. The
        pid killed, or None if no worker is alive."""
        live = self._live_workers()
        if not live:
            return None
        pid = min(live)
        # Through the process object, not os.kill(pid): it never signals a pid it has
        # collected, which may by then be another process's.
        live[pid].kill()
        log.warning("process_pool_worker_killed", pid=pid)
        return pid

    async def reserve_waiting(self) -> PoolSlot:
        """Admit one task, waiting for a free place (for background jobs, never for requests)."""
        while True:
            try:
                return self.reserve(count_rejection=False)
            except Overloaded:
                if self._executor is None:
                    raise
                await asyncio.sleep(0.05)

    def reserve(self, *, count_rejection: bool = True) -> PoolSlot:
        """Admit one task, or raise `Overloaded` at once."""
        if self._executor is None:
            raise Overloaded("The process pool is not running; retry shortly.")
        if self._in_flight >= self.capacity:
            if count_rejection:
                POOL_TASKS.labels(outcome="rejected").inc()
            raise Overloaded(
                f"All {self.workers} workers are busy and the queue is full; retry shortly."
            )
        self._in_flight += 1
        self._observe()
        return PoolSlot(self)

    def _release(self) -> None:
        self._in_flight -= 1
        self._observe()

    def _observe(self) -> None:
        POOL_IN_FLIGHT.set(self._in_flight)
        POOL_QUEUE_DEPTH.set(max(0, self._in_flight - self.workers))

    def _replace_broken(self, broken: ProcessPoolExecutor) -> None:
        # Several tasks fail together when a worker dies; only the first replaces the pool.
        if self._executor is not broken:
            return
        self.restarts += 1
        POOL_RESTARTS.inc()
        log.error("process_pool_broken", restarts=self.restarts)
        self._retired.append(broken)
        self._executor = self._new_executor()
        asyncio.get_running_loop().create_task(self._reap(broken))

    async def _reap(self, broken: ProcessPoolExecutor) -> None:
        await asyncio.to_thread(broken.shutdown, wait=True, cancel_futures=True)
        if broken in self._retired:
            self._retired.remove(broken)

    async def _run(
        self, slot: PoolSlot, fn: Callable[..., T], args: tuple[Any, ...], time_limit: float | None
    ) -> T:
        limit = time_limit or self.task_timeout
        left = deadline.remaining()
        cut = False
        if left is not None and left < limit:
            # The request's answer is due sooner than the task's own limit: give it only
            # that, and do not start it at all when almost nothing is left.
            if left < MIN_TASK_SECONDS:
                slot._free()
                deadline.DEADLINE_CUTOFFS.labels(dependency="process_pool").inc()
                raise DeadlineExceeded("Too little of the request's time was left to start it.")
            limit, cut = left, True
        loop = asyncio.get_running_loop()
        # Every task is a pure computation, so one that met a broken pool (a worker killed
        # while idle, or a sibling's worker dying under it) runs once more on the fresh pool: a
        # request is never failed for a worker that died for someone else. Only a second
        # break reaches the client.
        for attempt in (1, 2):
            executor = self._executor
            if executor is None:
                slot._free()
                raise Overloaded("The process pool is not running; retry shortly.")
            if not self._started_workers:
                for warming in self._start_workers(executor):
                    # Its failure is the task's too (a broken pool), and reported there.
                    warming.add_done_callback(_consume_exception)
            future: Future[T] | None = None
            try:
                if self.tracer is None:
                    future = executor.submit(fn, *args)
                else:
                    future = executor.submit(
                        traced_task, context_carrier(), time.time_ns(), fn, *args
                    )
                async with asyncio.timeout(limit):
                    result = await asyncio.wrap_future(future)
            except BrokenProcessPool:
                self._replace_broken(executor)
                if attempt == 1:
                    POOL_TASKS.labels(outcome="retried").inc()
                    log.warning("process_pool_task_retried")
                    continue
                slot._free()
                POOL_TASKS.labels(outcome="crashed").inc()
                raise WorkerCrashed(
                    "A worker process died while running the task, twice; the pool has been "
                    "replaced and retrying is safe."
                ) from None
            except BaseException as exc:
                # Timed out, cancelled, or the task's own error: the place is given back when
                # the worker is really done with it. Done callbacks run in the executor's
                # thread: hop back to the loop to touch our state.
                if future is None:  # never submitted
                    slot._free()
                    raise
                future.add_done_callback(lambda _: loop.call_soon_threadsafe(slot._free))
                if isinstance(exc, TimeoutError):
                    future.cancel()  # frees the place at once if the task had not started
                    POOL_TASKS.labels(outcome="timeout").inc()
                    if cut:  # the request's deadline, not the task's limit: not the pool's fault
                        raise DeadlineExceeded(
                            "The request's time ran out before the CPU task finished."
                        ) from None
                    raise TaskTimedOut(f"The CPU task did not finish within {limit:g} s.") from None
                if isinstance(exc, Exception):
                    POOL_TASKS.labels(outcome="error").inc()
                raise
            slot._free()
            POOL_TASKS.labels(outcome="ok").inc()
            return result
        raise AssertionError("unreachable: the second attempt returns or raises")
