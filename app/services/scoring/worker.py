"""The worker side of scoring: pure, picklable functions that run in the pool's processes.

Nothing here imports the web stack (FastAPI, Starlette): a spawned worker imports this module,
numpy, pandas and pydantic, and no more.

Data model: the records become one float matrix (records x features) with NaN where a record
lacks a feature, plus the list of ids; that is what crosses process boundaries, never lists of
dicts. The rules:
- `zscore`: (x - mean) / std with the population std (ddof 0); a constant feature scores 0.
- `minmax`: (x - min) / (max - min); a constant feature scores 0.
- `rank`: average ranks scaled to (0, 1], as pandas `rank(pct=True)`.
- `zscore` and `minmax` scores are the weighted sum of the per-feature values; `rank` scores the
  weighted mean (divided by the sum of the weights).
- A record missing a feature gets 0 for that feature's term, and the feature's statistics and
  normalisation use only the records that have it.
- Results are sorted by score descending, ties by id; `top_k` limits the results returned, not
  the statistics.
- Invalid input raises `ValidationFailed`, which pickles back to the web process as it is.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from app.core.exceptions import ValidationFailed
from app.schemas.scoring import ScoringRequest

_INVALID = "The scoring request is not valid; see errors."


@dataclass(frozen=True, slots=True)
class ScoringLimits:
    """Bounds a request must respect."""

    max_records: int
    max_features: int


@dataclass(frozen=True, slots=True)
class ScoringInput:
    """A validated request as arrays: what the scoring steps work on."""

    ids: list[str]
    matrix: np.ndarray  # float64, records x features, NaN where missing
    features: list[str]
    weights: np.ndarray
    method: str
    top_k: int | None


@dataclass(frozen=True, slots=True)
class FittedFeatures:
    """What scoring a row needs to know about every feature."""

    method: str
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    sorted_columns: tuple[np.ndarray, ...]  # only for rank: each feature's values, sorted


def _error(loc: list[str | int], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": type_}


def _check_sizes(body: bytes, limits: ScoringLimits) -> None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return  # the full validation says what is wrong, in its own words
    records = parsed.get("records") if isinstance(parsed, dict) else None
    if not isinstance(records, list):
        return
    if len(records) > limits.max_records:
        raise ValidationFailed(
            _INVALID,
            [_error(["records"], f"at most {limits.max_records} records", "too_long")],
        )
    for index, record in enumerate(records):
        features = record.get("features") if isinstance(record, dict) else None
        if isinstance(features, dict) and len(features) > limits.max_features:
            raise ValidationFailed(
                _INVALID,
                [
                    _error(
                        ["records", index, "features"],
                        f"at most {limits.max_features} features per record",
                        "too_long",
                    )
                ],
            )


def parse_request(body: bytes, limits: ScoringLimits) -> ScoringInput:
    """Validate a raw JSON body and turn it into arrays, or raise `ValidationFailed`.

    Sizes are checked on a cheap first parse (orjson's plain objects, about 9 bytes of memory
    per byte of JSON) before the full validation builds a model per record (about twice that):
    a body with too many records or features is refused before it costs the most.
    """
    _check_sizes(body, limits)
    try:
        request = ScoringRequest.model_validate_json(body)
    except ValidationError as exc:
        raise ValidationFailed(
            _INVALID, [_error(list(e["loc"]), e["msg"], e["type"]) for e in exc.errors()[:20]]
        ) from None

    errors: list[dict[str, Any]] = []
    if len(request.records) > limits.max_records:
        errors.append(_error(["records"], f"at most {limits.max_records} records", "too_long"))
    seen: set[str] = set()
    present: set[str] = set()
    for index, record in enumerate(request.records):
        if len(record.features) > limits.max_features:
            errors.append(
                _error(
                    ["records", index, "features"],
                    f"at most {limits.max_features} features per record",
                    "too_long",
                )
            )
        if record.id in seen:
            errors.append(
                _error(["records", index, "id"], "record ids must be unique", "duplicate")
            )
        seen.add(record.id)
        present.update(record.features)
        if len(errors) >= 20:
            break
    for name in request.weights:
        if name not in present:
            errors.append(
                _error(["weights", name], "no record has this feature", "unknown_feature")
            )
    if request.method == "rank" and math.isclose(sum(request.weights.values()), 0.0, abs_tol=1e-12):
        errors.append(
            _error(
                ["weights"], "rank divides by the sum of weights: it must not be 0", "value_error"
            )
        )
    if errors:
        raise ValidationFailed(_INVALID, errors[:20])

    features = list(request.weights)
    column = {name: j for j, name in enumerate(features)}
    matrix = np.full((len(request.records), len(features)), np.nan)
    for i, record in enumerate(request.records):
        for name, value in record.features.items():
            j = column.get(name)
            if j is not None:
                matrix[i, j] = value
    return ScoringInput(
        ids=[record.id for record in request.records],
        matrix=matrix,
        features=features,
        weights=np.array([request.weights[name] for name in features]),
        method=request.method,
        top_k=request.top_k,
    )


def feature_statistics(matrix: np.ndarray, features: list[str]) -> dict[str, dict[str, float]]:
    """count, mean, population std, min, quartiles and max of each feature (pandas)."""
    # Imported here, in the worker (its warm-up calls this first): the web process imports
    # this module for the functions it sends, and pandas would cost it some 34 MB for nothing.
    import pandas as pd

    frame = pd.DataFrame(matrix, columns=features)
    described = frame.describe(percentiles=[0.25, 0.5, 0.75])
    population_std = frame.std(ddof=0)
    table: dict[Hashable, Any] = described.to_dict()
    return {
        name: {
            "count": int(table[name]["count"]),
            "mean": float(table[name]["mean"]),
            "std": float(population_std[name]),
            "min": float(table[name]["min"]),
            "p25": float(table[name]["25%"]),
            "p50": float(table[name]["50%"]),
            "p75": float(table[name]["75%"]),
            "max": float(table[name]["max"]),
        }
        for name in features
    }


def fit(matrix: np.ndarray, method: str) -> FittedFeatures:
    """Learn what normalising a row needs, over every record (NaN ignored)."""
    mean = np.nanmean(matrix, axis=0)
    std = np.nanstd(matrix, axis=0)  # ddof 0
    minimum = np.nanmin(matrix, axis=0)
    maximum = np.nanmax(matrix, axis=0)
    sorted_columns: tuple[np.ndarray, ...] = ()
    if method == "rank":
        sorted_columns = tuple(np.sort(col[~np.isnan(col)]) for col in matrix.T)
    return FittedFeatures(method, mean, std, minimum, maximum, sorted_columns)


def _normalised(rows: np.ndarray, fitted: FittedFeatures) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        if fitted.method == "zscore":
            values = np.where(fitted.std > 0, (rows - fitted.mean) / fitted.std, 0.0)
        elif fitted.method == "minmax":
            spread = fitted.max - fitted.min
            values = np.where(spread > 0, (rows - fitted.min) / spread, 0.0)
        else:
            values = np.empty_like(rows)
            for j, column in enumerate(fitted.sorted_columns):
                # The average rank of a value among n: (first position + last position) / 2,
                # 1-based; divided by n it is pandas' rank(method="average", pct=True).
                below = np.searchsorted(column, rows[:, j], side="left")
                through = np.searchsorted(column, rows[:, j], side="right")
                values[:, j] = (below + 1 + through) / 2 / len(column)
    return np.where(np.isnan(rows), 0.0, values)


def score_rows(rows: np.ndarray, fitted: FittedFeatures, weights: np.ndarray) -> np.ndarray:
    """Scores of a block of rows (any block: a job scores its records in chunks)."""
    weighted: np.ndarray = _normalised(rows, fitted) @ weights
    if fitted.method == "rank":
        weighted = weighted / weights.sum()
    return weighted


def rank_results(ids: list[str], scores: np.ndarray, top_k: int | None) -> list[dict[str, Any]]:
    """Results sorted by score descending, ties by id; the first `top_k` of them."""
    order = np.lexsort((np.asarray(ids, dtype=object), -scores))
    if top_k is not None:
        order = order[:top_k]
    return [
        {"id": ids[i], "score": float(scores[i]), "rank": position}
        for position, i in enumerate(order.tolist(), start=1)
    ]


def job_result(
    method: str,
    ids: list[str],
    scores: np.ndarray,
    top_k: int | None,
    statistics: dict[str, dict[str, float]],
) -> bytes:
    """A finished job's result, encoded as JSON here: the web process keeps these bytes (and
    bounds them by their size), never a Python object per result, which costs ten times more."""
    return orjson.dumps(
        {
            "method": method,
            "count": len(ids),
            "results": rank_results(ids, scores, top_k),
            "statistics": statistics,
        }
    )


def score(body: bytes, limits: ScoringLimits) -> dict[str, Any]:
    """The whole of `POST /scoring`, in one worker task."""
    data = parse_request(body, limits)
    fitted = fit(data.matrix, data.method)
    scores = score_rows(data.matrix, fitted, data.weights)
    if not np.isfinite(scores).all():
        # The schema bounds every number so that this cannot happen; if it ever does, the
        # client hears which input was out of range rather than getting a 500.
        raise ValidationFailed(
            _INVALID,
            [_error(["records"], "values too large to score with these weights", "value_error")],
        )
    return {
        "method": data.method,
        "count": len(data.ids),
        "results": rank_results(data.ids, scores, data.top_k),
        "statistics": feature_statistics(data.matrix, data.features),
    }


# The bytes of one encoded result besides its id, at the least: `{"id":"","score":0.0,"rank":1},`.
_RESULT_FLOOR = 32


@dataclass(frozen=True, slots=True)
class PreparedJob:
    """A job after its first worker step: the input, what scoring rows needs, the statistics."""

    input: ScoringInput
    fitted: FittedFeatures
    statistics: dict[str, dict[str, float]]
    # The fewest bytes its encoded results can take: the service refuses at once a job whose
    # result it could not keep, instead of failing it after the work.
    result_bytes_floor: int


def prepare_job(body: bytes, limits: ScoringLimits) -> PreparedJob:
    """Worker step 1 of a job: validate, build the matrix, fit, and compute the statistics."""
    data = parse_request(body, limits)
    kept = data.ids if data.top_k is None else data.ids[: data.top_k]
    return PreparedJob(
        input=data,
        fitted=fit(data.matrix, data.method),
        statistics=feature_statistics(data.matrix, data.features),
        result_bytes_floor=sum(len(record_id) for record_id in kept) + _RESULT_FLOOR * len(kept),
    )


def estimate_pi(samples: int, seed: int | None) -> dict[str, Any]:
    """A Monte Carlo estimate of pi, in chunks so memory stays small whatever `samples` is."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    inside = 0
    remaining = samples
    while remaining:
        chunk = min(remaining, 1_000_000)
        x = rng.random(chunk)
        y = rng.random(chunk)
        inside += int(np.count_nonzero(x * x + y * y <= 1.0))
        remaining -= chunk
    estimate = 4 * inside / samples
    return {
        "samples": samples,
        "pi_estimate": estimate,
        "error": abs(estimate - math.pi),
        "elapsed_ms": round((time.perf_counter() - start) * 1000, 2),
        "worker_pid": os.getpid(),
    }


def warm_up() -> int:
    """Run once per worker at start-up so numpy and pandas are imported before real work;
    returns the worker's pid."""
    feature_statistics(np.zeros((2, 1)), ["warm"])
    return os.getpid()
