"""Scoring requests and answers.

The request model is validated inside a worker process (from the raw body), not on the event
loop: 100,000 records are a million numbers, and validating them would stall every other request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictInt,
    StringConstraints,
)
from pydantic.config import JsonDict

ScoringMethod = Literal["zscore", "minmax", "rank"]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# Strict: a string such as "1.5" is refused rather than coerced; NaN and infinities too. The
# magnitude bound keeps every sum, square and product of scoring finite (1e150 squared, times
# 100,000 records, is still far below the largest float): a finite input never scores inf.
MAX_MAGNITUDE = 1e150
MAX_SAFE_INTEGER = 2**53 - 1


def _safe_integer(value: Any) -> Any:
    # I-JSON (RFC 7493): an integer a double cannot hold exactly is refused, not rounded.
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        raise ValueError("integers must be within -(2**53-1) and 2**53-1 (I-JSON)")
    return value


FiniteNumber = Annotated[
    float,
    BeforeValidator(_safe_integer),
    Strict(),
    AllowInfNan(False),
    Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE),
]


class ScoringRecord(BaseModel):
    """One item to score: an id and its numeric features."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    features: dict[FeatureName, FiniteNumber]


_SCORING_EXAMPLE: JsonDict = {
    "records": [
        {"id": "courier-a", "features": {"speed": 3, "cost": 10, "rating": 4.5}},
        {"id": "courier-b", "features": {"speed": 5, "cost": 30, "rating": 3.9}},
        {"id": "courier-c", "features": {"speed": 4, "cost": 20, "rating": 4.8}},
    ],
    "weights": {"speed": 1, "cost": -0.5, "rating": 0.8},
    "method": "zscore",
    "top_k": 2,
}


class ScoringRequest(BaseModel):
    """What to score, how, and how many results to return.

    Rules JSON Schema cannot state, checked in the worker (422 with `errors`): every weight must
    name a feature some record has, record ids are unique, `rank` needs weights that do not sum
    to 0, and the record and feature counts are bounded by the server's settings."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_SCORING_EXAMPLE]})

    records: list[ScoringRecord] = Field(min_length=1)
    weights: dict[FeatureName, FiniteNumber] = Field(min_length=1)
    method: ScoringMethod = "zscore"
    top_k: StrictInt | None = Field(
        default=None, ge=1, le=MAX_SAFE_INTEGER, description="Results returned (default all)."
    )


class ScoredRecord(BaseModel):
    """One result: higher scores are better."""

    id: str
    score: float
    rank: int = Field(description="1 for the best score; ties are ordered by id.")


class FeatureStatistics(BaseModel):
    """Per-feature statistics over the records that have the feature."""

    count: int
    mean: float
    std: float = Field(description="Population standard deviation (ddof 0), as the z-scores use.")
    min: float
    p25: float
    p50: float
    p75: float
    max: float


class ScoringResult(BaseModel):
    """Scores, ranks and statistics."""

    method: ScoringMethod
    count: int = Field(description="Records scored.")
    results: list[ScoredRecord]
    statistics: dict[str, FeatureStatistics]


class CpuDemoRequest(BaseModel):
    """A Monte Carlo estimate of pi: CPU-bound work of a chosen size."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"samples": 5_000_000, "seed": 42}]}
    )

    samples: StrictInt = Field(default=2_000_000, ge=1_000, le=50_000_000)
    seed: StrictInt | None = Field(default=None, ge=0, le=2**32 - 1)


class CpuDemoResult(BaseModel):
    """What the worker computed, how long it took and which process ran it."""

    samples: int
    pi_estimate: float
    error: float
    elapsed_ms: float
    worker_pid: int
    server_pid: int


class JobAccepted(BaseModel):
    """A queued scoring job."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    location: str


class JobStatus(BaseModel):
    """A scoring job's state, progress (0-1) and, when done, its result."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float
    created_at: str
    finished_at: str | None = None
    result: ScoringResult | None = None
    error: str | None = None
