"""Scoring jobs in this process (`MemoryJobs`); `RedisJobs` (app/redis/jobs.py) is its twin for
every replica, and app/services/scoring/ runs the jobs."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from app.stores.jobs import RESULTS_EVICTED, ResultBounds, ScoringJob


class MemoryJobs:
    """Jobs in this process's memory: finished ones kept `ttl_seconds`, at most
    `bounds.max_results` of them (the oldest forgotten first), their results within `bounds`."""

    def __init__(
        self,
        *,
        ttl_seconds: float,
        bounds: ResultBounds,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._bounds = bounds
        self._clock = clock
        self._jobs: OrderedDict[str, ScoringJob] = OrderedDict()
        self._finished_at: dict[str, float] = {}
        # Results in the order they were kept: eviction takes them from the front.
        self._results: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._result_bytes = 0
        self._owner_bytes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def result_bytes(self) -> int:
        """Bytes of results held now."""
        return self._result_bytes

    async def save(self, job: ScoringJob) -> None:
        """Store a copy of `job` (what the caller changes later is not kept until saved)."""
        self._purge()
        self._jobs[job.id] = replace(job)
        if job.finished:
            self._finished_at.setdefault(job.id, self._clock())

    async def load(self, job_id: str) -> ScoringJob | None:
        """The job, or None if unknown or expired."""
        self._purge()
        job = self._jobs.get(job_id)
        return replace(job) if job is not None else None

    async def keep_result(self, job_id: str, owner: str, result: bytes) -> None:
        """Keep `result` within the bounds, evicting the oldest first."""
        self._purge()
        self._drop_result(job_id)
        self._results[job_id] = (owner, result)
        self._result_bytes += len(result)
        self._owner_bytes[owner] = self._owner_bytes.get(owner, 0) + len(result)
        bounds = self._bounds
        while self._owner_bytes.get(owner, 0) > bounds.max_bytes_per_client:
            oldest = next(key for key, (who, _) in self._results.items() if who == owner)
            self._evict(oldest)
        while self._results and (
            self._result_bytes > bounds.max_bytes or len(self._results) > bounds.max_results
        ):
            self._evict(next(iter(self._results)))

    async def load_result(self, job_id: str) -> bytes | None:
        """The result, or None if there is none (expired, evicted, or never finished)."""
        self._purge()
        kept = self._results.get(job_id)
        return kept[1] if kept is not None else None

    async def heartbeat(self, job_id: str, lease_seconds: float) -> None:
        """Nothing to say: a job in this process's memory dies with its runner."""

    async def alive(self, job_id: str) -> bool:
        """Always: if the runner (this process) had died, so would the job."""
        return True

    def _evict(self, job_id: str) -> None:
        self._drop_result(job_id)
        RESULTS_EVICTED.inc()

    def _drop_result(self, job_id: str) -> None:
        kept = self._results.pop(job_id, None)
        if kept is None:
            return
        owner, result = kept
        self._result_bytes -= len(result)
        left = self._owner_bytes[owner] - len(result)
        if left > 0:
            self._owner_bytes[owner] = left
        else:
            del self._owner_bytes[owner]

    def _forget(self, job_id: str) -> None:
        del self._finished_at[job_id], self._jobs[job_id]
        self._drop_result(job_id)

    def _purge(self) -> None:
        now = self._clock()
        for job_id, finished_at in list(self._finished_at.items()):
            if now - finished_at >= self._ttl:
                self._forget(job_id)
        # Finished jobs in the order they finished: past the bound, the oldest go first.
        for job_id in list(self._finished_at)[
            : max(0, len(self._finished_at) - self._bounds.max_results)
        ]:
            self._forget(job_id)
