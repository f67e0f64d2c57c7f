"""Scoring requests and jobs over the process pool, and the CPU demo.

Turns the pool's failures into our errors (saturation and a dead worker: 503 with Retry-After;
an overrunning task: 504) and keeps scoring jobs: submitted, run in chunks so their progress
can be followed (and published), kept for a while after they finish, then forgotten.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from app.core.errors import AppError, NotFound, ServiceUnavailable, ValidationFailed
from app.core.logging import get_logger
from app.services import scoring
from app.services.executors import PoolSaturated, PoolSlot, ProcessPool, TaskTimedOut, WorkerCrashed

log = get_logger(__name__)

JobState = Literal["queued", "running", "done", "failed"]
Publisher = Callable[[str, dict[str, Any]], Awaitable[None]]
JOBS_TOPIC = "scoring.jobs"


class WorkerDied(AppError):
    """The worker process running the task died (the pool has been replaced)."""

    status = 500
    type = "/problems/worker-crashed"


class TaskTimeout(AppError):
    """The CPU task overran its time limit."""

    status = 504
    type = "/problems/task-timeout"


def _busy(detail: str) -> ServiceUnavailable:
    error = ServiceUnavailable(detail, headers={"Retry-After": "1"})
    error.type = "/problems/overloaded"
    return error


@dataclass(eq=False)
class ScoringJob:
    """A scoring job's state as the API reports it."""

    id: str
    status: JobState = "queued"
    progress: float = 0.0
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    finished_monotonic: float | None = None


def prepare_job(body: bytes, limits: scoring.ScoringLimits) -> dict[str, Any]:
    """Worker step 1 of a job: validate, build the matrix, fit, and compute the statistics."""
    data = scoring.parse_request(body, limits)
    return {
        "input": data,
        "fitted": scoring.fit(data.matrix, data.method),
        "statistics": scoring.feature_statistics(data.matrix, data.features),
    }


class ScoringService:
    """Runs scoring in the pool now (`score`) or as a job (`submit_job`)."""

    def __init__(
        self,
        pool: ProcessPool,
        limits: scoring.ScoringLimits,
        *,
        job_ttl_seconds: float,
        chunk_records: int,
        max_finished_jobs: int = 1000,
        publish: Publisher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.limits = limits
        self.job_ttl = job_ttl_seconds
        self.chunk_records = chunk_records
        self.max_finished_jobs = max_finished_jobs
        self.publish = publish
        self._clock = clock
        self._jobs: OrderedDict[str, ScoringJob] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- admission and error mapping ------------------------------------------------------------

    def reserve(self) -> PoolSlot:
        """A place in the pool, or 503 at once (call before reading a large body)."""
        try:
            return self.pool.reserve()
        except PoolSaturated as exc:
            raise _busy(f"The scoring workers are saturated: {exc}. Retry shortly.") from None

    async def _run(self, slot: PoolSlot, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await slot.run(fn, *args)
        except scoring.ScoringInputError as exc:
            raise ValidationFailed(
                "The scoring request is not valid; see errors.", exc.errors
            ) from None
        except TaskTimedOut as exc:
            raise TaskTimeout(f"The CPU task overran: {exc}.") from None
        except WorkerCrashed as exc:
            raise WorkerDied(f"{exc}; the pool has been replaced and retrying is safe.") from None
        except PoolSaturated as exc:
            raise _busy(str(exc)) from None

    # --- immediate work -------------------------------------------------------------------------

    async def score(self, slot: PoolSlot, body: bytes) -> dict[str, Any]:
        """Score a raw request body in one worker task."""
        return await self._run(slot, scoring.score, body, self.limits)

    async def estimate_pi(self, slot: PoolSlot, samples: int, seed: int | None) -> dict[str, Any]:
        """The CPU demo, in a worker."""
        result = await self._run(slot, scoring.estimate_pi, samples, seed)
        return {**result, "server_pid": os.getpid()}

    # --- jobs -------------------------------------------------------------------------------------

    def check_job_capacity(self) -> None:
        """503 at once when as many jobs are unfinished as the pool admits tasks."""
        unfinished = sum(1 for job in self._jobs.values() if job.finished_monotonic is None)
        if unfinished >= self.pool.capacity:
            raise _busy(f"{unfinished} scoring jobs are still running; retry shortly.")

    async def submit_job(self, slot: PoolSlot, body: bytes) -> ScoringJob:
        """Validate and fit in a worker (422 at once if invalid), then score in the background."""
        prepared = await self._run(slot, prepare_job, body, self.limits)
        self._purge()
        job = ScoringJob(id=secrets.token_hex(8))
        self._jobs[job.id] = job
        task = asyncio.get_running_loop().create_task(self._complete(job, prepared))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("scoring_job_accepted", job_id=job.id, records=len(prepared["input"].ids))
        return job

    def get_job(self, job_id: str) -> ScoringJob:
        """A job that exists and has not expired, or `NotFound`."""
        self._purge()
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"Scoring job {job_id} does not exist or has expired.")
        return job

    async def _progress(self, job: ScoringJob, status: JobState, progress: float) -> None:
        job.status, job.progress = status, round(progress, 4)
        if self.publish is not None:
            await self.publish(
                JOBS_TOPIC, {"job_id": job.id, "status": status, "progress": job.progress}
            )

    async def _complete(self, job: ScoringJob, prepared: dict[str, Any]) -> None:
        data: scoring.ScoringInput = prepared["input"]
        try:
            await self._progress(job, "running", 0.1)
            total = len(data.ids)
            parts: list[np.ndarray] = []
            for start in range(0, total, self.chunk_records):
                rows = data.matrix[start : start + self.chunk_records]
                slot = await self.pool.reserve_waiting()
                parts.append(
                    await self._run(
                        slot, scoring.score_rows, rows, prepared["fitted"], data.weights
                    )
                )
                await self._progress(
                    job, "running", 0.1 + 0.8 * min(total, start + len(rows)) / total
                )
            slot = await self.pool.reserve_waiting()
            results = await self._run(
                slot, scoring.rank_results, data.ids, np.concatenate(parts), data.top_k
            )
            job.result = {
                "method": data.method,
                "count": total,
                "results": results,
                "statistics": prepared["statistics"],
            }
            await self._progress(job, "done", 1.0)
        except asyncio.CancelledError:
            job.error = "The server shut down before the job finished."
            job.status = "failed"
            raise
        except Exception as exc:
            detail = exc.detail if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            job.error = detail
            await self._progress(job, "failed", job.progress)
            log.warning("scoring_job_failed", job_id=job.id, error=detail)
        finally:
            job.finished_at = datetime.now(UTC).isoformat()
            job.finished_monotonic = self._clock()

    def _purge(self) -> None:
        now = self._clock()
        finished = [j for j in self._jobs.values() if j.finished_monotonic is not None]
        for job in finished:
            assert job.finished_monotonic is not None
            if now - job.finished_monotonic >= self.job_ttl:
                del self._jobs[job.id]
        finished = [j for j in self._jobs.values() if j.finished_monotonic is not None]
        for job in finished[: max(0, len(finished) - self.max_finished_jobs)]:
            del self._jobs[job.id]

    async def close(self) -> None:
        """Cancel running jobs (the pool is closing) and wait for them to wind up."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
