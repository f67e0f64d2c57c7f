"""The web-process side of scoring: requests and jobs over the process pool, and the CPU demo.

Scoring jobs are submitted, run in chunks so their progress can be followed (and published on
the bus), kept for a while after they finish, then forgotten. The pool's own errors
(`Overloaded`, `TaskTimedOut`, `WorkerCrashed`) and the worker's `ValidationFailed` reach the
client as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from typing import Any

import numpy as np

from app.core.clock import utc_now_iso
from app.core.exceptions import (
    AppError,
    Gone,
    NotFound,
    Overloaded,
    StoreUnavailable,
    UnprocessableContent,
    ValidationFailed,
)
from app.core.logging import get_logger
from app.services.events import Publish
from app.services.process_pool import PoolSlot, ProcessPool
from app.services.scoring import worker
from app.stores.jobs import JobState, JobStore, ScoringJob

log = get_logger(__name__)

JOBS_TOPIC = "scoring.jobs"
# A running job's replica says it is alive this often; a job not heard of for a lease is
# reported failed by whichever replica is asked (its replica died: nothing will finish it).
HEARTBEAT_SECONDS = 2.0
JOB_LEASE_SECONDS = 6.0
ORPHANED = (
    "The server running this job stopped before it finished (it was not heard from for "
    f"{JOB_LEASE_SECONDS:g} s); submit the job again."
)


class ScoringService:
    """Runs scoring in the pool now (`score`) or as a job (`submit_job`)."""

    def __init__(
        self,
        pool: ProcessPool,
        limits: worker.ScoringLimits,
        *,
        jobs: JobStore,
        chunk_records: int,
        max_result_bytes: int,
        publish: Publish | None = None,
    ) -> None:
        self.pool = pool
        self.max_result_bytes = max_result_bytes
        self.limits = limits
        self.jobs = jobs
        self.chunk_records = chunk_records
        self.publish = publish
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[str, ScoringJob] = {}  # this process's unfinished jobs
        self._heartbeat: asyncio.Task[None] | None = None

    # --- admission ---------------------------------------------------------------------------

    def reserve(self) -> PoolSlot:
        """A place in the pool, or `Overloaded` at once (call before reading a large body)."""
        return self.pool.reserve()

    # --- immediate work -------------------------------------------------------------------------

    async def score(self, slot: PoolSlot, body: bytes) -> dict[str, Any]:
        """Score a raw request body in one worker task."""
        return await slot.run(worker.score, body, self.limits)

    async def estimate_pi(self, slot: PoolSlot, samples: int, seed: int | None) -> dict[str, Any]:
        """The CPU demo, in a worker."""
        result = await slot.run(worker.estimate_pi, samples, seed)
        return {**result, "server_pid": os.getpid()}

    # --- jobs -------------------------------------------------------------------------------------

    def check_job_capacity(self) -> None:
        """503 at once when as many jobs run here as this process's pool admits tasks."""
        unfinished = len(self._tasks)
        if unfinished >= self.pool.capacity:
            raise Overloaded(f"{unfinished} scoring jobs are still running; retry shortly.")

    async def submit_job(self, slot: PoolSlot, body: bytes, *, owner: str) -> ScoringJob:
        """Validate and fit in a worker (422 at once if invalid), then score in the background.

        The job belongs to `owner` (a client key): its id travels on the public bus with the
        progress events, so the id alone must not be enough to read the result."""
        prepared = await slot.run(worker.prepare_job, body, self.limits)
        if prepared.result_bytes_floor > self.max_result_bytes:
            wanted = (
                len(prepared.input.ids) if prepared.input.top_k is None else prepared.input.top_k
            )
            raise ValidationFailed(
                "The job's result would be larger than a client may keep.",
                [
                    {
                        "loc": ["body", "top_k"],
                        "msg": f"{wanted} results are at least {prepared.result_bytes_floor} "
                        f"bytes, more than the {self.max_result_bytes} kept per client; "
                        "ask for fewer with top_k",
                        "type": "too_long",
                    }
                ],
            )
        job = ScoringJob(id=secrets.token_hex(8), owner=owner)
        await self.jobs.heartbeat(job.id, JOB_LEASE_SECONDS)
        await self.jobs.save(job)
        self._running[job.id] = job
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat_forever())
        task = asyncio.get_running_loop().create_task(self._complete(job, prepared))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("scoring_job_accepted", job_id=job.id, records=len(prepared.input.ids))
        return job

    async def get_job(self, job_id: str, *, owner: str) -> tuple[ScoringJob, bytes | None]:
        """`owner`'s job and, when done, its encoded result; `NotFound` if the job does not
        exist or has expired (someone else's job is answered as if it did not exist), `Gone`
        if it finished but its result was evicted to keep results within their bytes."""
        job = await self.jobs.load(job_id)
        if job is None or not secrets.compare_digest(job.owner, owner):
            raise NotFound(f"Scoring job {job_id} does not exist or has expired.")
        if not job.finished and job_id not in self._running and not await self.jobs.alive(job_id):
            job = await self._orphaned(job)
        if job.status != "done":
            return job, None
        result = await self.jobs.load_result(job_id)
        if result is None:
            raise Gone(
                f"Scoring job {job_id} finished, but its result was evicted: results are kept "
                "within a bound of bytes, the oldest evicted first. Submit the job again, or "
                "ask for fewer results with top_k."
            )
        return job, result

    async def _orphaned(self, job: ScoringJob) -> ScoringJob:
        """Record that `job`'s replica died mid-way: failed, with the reason, for everyone."""
        job.status, job.error, job.finished_at = "failed", ORPHANED, utc_now_iso()
        await self.jobs.save(job)
        log.warning("scoring_job_orphaned", job_id=job.id)
        if self.publish is not None:
            with contextlib.suppress(StoreUnavailable):
                await self.publish(
                    JOBS_TOPIC, {"job_id": job.id, "status": "failed", "progress": job.progress}
                )
        return job

    async def _beat_forever(self) -> None:
        # One loop for every job this process runs: each says "alive" for a lease.
        while self._running:
            for job_id in list(self._running):
                with contextlib.suppress(StoreUnavailable):  # the next beat tries again
                    await self.jobs.heartbeat(job_id, JOB_LEASE_SECONDS)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _progress(self, job: ScoringJob, status: JobState, progress: float) -> None:
        job.status, job.progress = status, round(progress, 4)
        await self.jobs.save(job)
        if self.publish is not None:
            try:
                await self.publish(
                    JOBS_TOPIC, {"job_id": job.id, "status": status, "progress": job.progress}
                )
            except StoreUnavailable:  # progress notices are best effort; the job goes on
                log.warning("scoring_progress_not_published", job_id=job.id)

    async def _complete(self, job: ScoringJob, prepared: worker.PreparedJob) -> None:
        data = prepared.input
        try:
            await self._progress(job, "running", 0.1)
            total = len(data.ids)
            parts: list[np.ndarray] = []
            for start in range(0, total, self.chunk_records):
                rows = data.matrix[start : start + self.chunk_records]
                slot = await self.pool.reserve_waiting()
                parts.append(await slot.run(worker.score_rows, rows, prepared.fitted, data.weights))
                await self._progress(
                    job, "running", 0.1 + 0.8 * min(total, start + len(rows)) / total
                )
            slot = await self.pool.reserve_waiting()
            result = await slot.run(
                worker.job_result,
                data.method,
                data.ids,
                np.concatenate(parts),
                data.top_k,
                prepared.statistics,
            )
            if len(result) > self.max_result_bytes:
                raise UnprocessableContent(
                    f"The result is {len(result)} bytes, more than the {self.max_result_bytes} "
                    "a client may keep; ask for fewer results with top_k."
                )
            await self.jobs.keep_result(job.id, job.owner, result)
            job.result_bytes = len(result)
            job.finished_at = utc_now_iso()
            await self._progress(job, "done", 1.0)
        except asyncio.CancelledError:
            job.error = "The server shut down before the job finished."
            await asyncio.shield(self._finish_failed(job))
            raise
        except Exception as exc:
            detail = exc.detail if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            job.error = detail
            log.warning("scoring_job_failed", job_id=job.id, error=detail)
            await self._finish_failed(job)
        finally:
            self._running.pop(job.id, None)

    async def _finish_failed(self, job: ScoringJob) -> None:
        job.finished_at = utc_now_iso()
        try:
            await self._progress(job, "failed", job.progress)
        except AppError as exc:  # the store itself is down: nothing more can be recorded
            log.warning("scoring_job_state_lost", job_id=job.id, error=exc.detail)

    async def close(self) -> None:
        """Cancel running jobs (the pool is closing) and wait for them to wind up."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
