"""The process pool for CPU work, with admission control, per-task timeouts and self-repair.

- Admission: at most `workers + queue_limit` tasks are admitted at once; past that, `reserve`
  refuses at once (503 with Retry-After) instead of letting work pile up. A slot is reserved
  before the request body is even read, so a flood cannot fill memory with bodies waiting.
- Timeout: a task that overruns is answered as timed out, but a running process cannot be
  interrupted, so its slot stays taken until the worker really finishes: admission stays honest.
- Repair: a worker that dies (SIGKILL, out of memory) breaks a `ProcessPoolExecutor` for good;
  the tasks it held fail with `WorkerCrashed`, a fresh pool replaces it, and the next task runs.
- Workers are started with `spawn` (a clean interpreter, safe with the event loop's threads)
  and warmed up so the first request does not pay for importing numpy and pandas.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge

from app.core.logging import get_logger

log = get_logger(__name__)
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


class PoolSaturated(Exception):
    """Every worker is busy and the queue is full."""


class TaskTimedOut(Exception):
    """The task did not finish within its timeout (it may still be running)."""


class WorkerCrashed(Exception):
    """The worker running the task died; the pool has been replaced."""


class PoolSlot:
    """One admitted task's place in the pool.

    Run one task with `run`; the place is given back when the worker is done with it. If the
    task is never submitted (the request body could not be read, say), call `abandon`.
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

    async def run(self, fn: Callable[..., T], *args: Any, time_limit: float | None = None) -> T:
        """Run `fn(*args)` in a worker (once per slot)."""
        if self._submitted:
            raise RuntimeError("a pool slot runs one task")
        self._submitted = True
        return await self._pool._run(self, fn, args, time_limit)


class ProcessPool:
    """A `ProcessPoolExecutor` owned by the lifespan, with the rules in the module docstring."""

    def __init__(self, workers: int, queue_limit: int, task_timeout: float) -> None:
        self.workers = workers
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
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
        )

    async def start(self) -> None:
        """Start the workers and wait until each has imported the scoring libraries."""
        from app.services.scoring import warm_up

        self._executor = self._new_executor()
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._executor, warm_up) for _ in range(self.workers))
        )
        log.info("process_pool_started", workers=self.workers, pids=self.worker_pids())

    async def close(self) -> None:
        """Stop every worker (cancelling queued tasks) and wait for the processes to exit."""
        executors = [e for e in (self._executor, *self._retired) if e is not None]
        self._executor = None
        self._retired.clear()
        for executor in executors:
            # Joining processes blocks: do it in a thread, not on the event loop.
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
        log.info("process_pool_stopped")

    def worker_pids(self) -> list[int]:
        """The pids of the current workers (for tests and health)."""
        processes = getattr(self._executor, "_processes", None) or {}
        return sorted(processes)

    async def reserve_waiting(self) -> PoolSlot:
        """Admit one task, waiting for a free place (for background jobs, never for requests)."""
        while True:
            try:
                return self.reserve(count_rejection=False)
            except PoolSaturated:
                if self._executor is None:
                    raise
                await asyncio.sleep(0.05)

    def reserve(self, *, count_rejection: bool = True) -> PoolSlot:
        """Admit one task, or raise `PoolSaturated` at once."""
        if self._executor is None:
            raise PoolSaturated("the process pool is not running")
        if self._in_flight >= self.capacity:
            if count_rejection:
                POOL_TASKS.labels(outcome="rejected").inc()
            raise PoolSaturated(f"all {self.workers} workers are busy and the queue is full")
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
        executor = self._executor
        if executor is None:
            slot._free()
            raise PoolSaturated("the process pool is not running")
        try:
            future: Future[T] = executor.submit(fn, *args)
        except BrokenProcessPool:
            slot._free()
            self._replace_broken(executor)
            POOL_TASKS.labels(outcome="crashed").inc()
            raise WorkerCrashed("the process pool was broken; it has been replaced") from None
        # The slot is freed when the worker is really done, even if we stop waiting earlier.
        # Done callbacks run in the executor's thread: hop back to the loop to touch our state.
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(slot._free))
        try:
            async with asyncio.timeout(time_limit or self.task_timeout):
                result = await asyncio.wrap_future(future)
        except TimeoutError:
            future.cancel()  # frees the slot at once if the task had not started yet
            POOL_TASKS.labels(outcome="timeout").inc()
            raise TaskTimedOut(
                f"the task did not finish within {time_limit or self.task_timeout:g} s"
            ) from None
        except BrokenProcessPool:
            self._replace_broken(executor)
            POOL_TASKS.labels(outcome="crashed").inc()
            raise WorkerCrashed("a worker process died while running the task") from None
        except Exception:
            POOL_TASKS.labels(outcome="error").inc()
            raise
        POOL_TASKS.labels(outcome="ok").inc()
        return result
