"""The scoring-job store's interface (`JobStore`): a job's state, its result within byte
bounds, and its runner's heartbeat. `MemoryJobs` (app/services/scoring/service.py) or
`RedisJobs` (app/redis/jobs.py); the service that runs jobs is app/services/scoring/.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

import orjson
from prometheus_client import Counter

from app.core.clock import utc_now_iso

JobState = Literal["queued", "running", "done", "failed"]


RESULTS_EVICTED = Counter(
    "scoring_results_evicted_total",
    "Finished scoring jobs' results evicted (oldest first) to keep results within their bytes.",
)


@dataclass(eq=False)
class ScoringJob:
    """A scoring job's state as the API reports it. A finished job's result is kept apart
    (`JobStore.keep_result`), as encoded JSON bounded in bytes; `result_bytes` is its size."""

    id: str
    owner: str  # the submitter's client key: only they may read the job
    status: JobState = "queued"
    progress: float = 0.0
    created_at: str = field(default_factory=utc_now_iso)
    finished_at: str | None = None
    result_bytes: int | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        """Done or failed: nothing will change it any more."""
        return self.status in ("done", "failed")

    def to_json(self) -> bytes:
        """The job as JSON (the Redis job store keeps this)."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> ScoringJob:
        """The job `to_json` wrote (fields this version does not know are left out)."""
        fields = orjson.loads(raw)
        return cls(**{name: fields[name] for name in _JOB_FIELDS if name in fields})


_JOB_FIELDS = tuple(ScoringJob.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class ResultBounds:
    """How many bytes of finished results are kept: in all, and for one client."""

    max_bytes: int
    max_bytes_per_client: int
    max_results: int = 1000


class JobStore(Protocol):
    """Where jobs are kept between their updates: this process, or Redis for every replica."""

    async def save(self, job: ScoringJob) -> None:
        """Store the job's current state (finished jobs are kept for the job TTL)."""
        ...

    async def load(self, job_id: str) -> ScoringJob | None:
        """The job's latest saved state, or None if unknown or expired."""
        ...

    async def keep_result(self, job_id: str, owner: str, result: bytes) -> None:
        """Keep a finished job's encoded result for the job TTL, within the store's bounds:
        past them the oldest results go first (this owner's past its share, then anyone's)."""
        ...

    async def load_result(self, job_id: str) -> bytes | None:
        """The job's result, or None if it has none, expired or was evicted."""
        ...

    async def heartbeat(self, job_id: str, lease_seconds: float) -> None:
        """Say the job's runner is alive for `lease_seconds` more."""
        ...

    async def alive(self, job_id: str) -> bool:
        """Whether the job's runner said it was alive within its lease."""
        ...
