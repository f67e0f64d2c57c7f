"""Scoring jobs in Redis: a job submitted on one replica is read on any other.

Each job is one key holding its JSON, rewritten at every progress step and expiring
`ttl_seconds` after its last update, so finished jobs go away by themselves and a job whose
replica died stops being reported `running` once the TTL passes.
"""

from __future__ import annotations

import math

from app.redis.client import RedisClient
from app.services.scoring.service import ScoringJob


class RedisJobs:
    """The scoring `JobStore` kept in Redis."""

    def __init__(self, client: RedisClient, *, ttl_seconds: float) -> None:
        self._client = client
        self._ttl_ms = max(1, math.ceil(ttl_seconds * 1000))

    def _key(self, job_id: str) -> str:
        return f"{self._client.prefix}job:{job_id}"

    async def save(self, job: ScoringJob) -> None:
        """Store the job's current state for the TTL."""
        raw = job.to_json()
        await self._client.call(
            "jobs.save", lambda r: r.set(self._key(job.id), raw, px=self._ttl_ms)
        )

    async def load(self, job_id: str) -> ScoringJob | None:
        """The job's latest state, or None if unknown or expired."""
        raw = await self._client.call("jobs.load", lambda r: r.get(self._key(job_id)))
        return ScoringJob.from_json(raw) if raw is not None else None
