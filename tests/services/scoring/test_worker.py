"""Scoring functions against values computed by hand, for every method and edge case."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.core.exceptions import ValidationFailed
from app.services.scoring.worker import ScoringLimits, estimate_pi, score

LIMITS = ScoringLimits(max_records=1000, max_features=10)

# x: 1, 2, 3 -> mean 2, population std sqrt(2/3); y: 10, 10, 40 -> mean 20, std sqrt(200)
RECORDS = [
    {"id": "a", "features": {"x": 1, "y": 10}},
    {"id": "b", "features": {"x": 2, "y": 10}},
    {"id": "c", "features": {"x": 3, "y": 40}},
]


def _score(
    records: Sequence[Mapping[str, Any]], weights: dict[str, float], method: str, **extra: object
) -> dict[str, Any]:
    body = {"records": records, "weights": weights, "method": method, **extra}
    return score(json.dumps(body).encode(), LIMITS)


def _scores(result: dict[str, Any]) -> dict[str, float]:
    return {r["id"]: r["score"] for r in result["results"]}


def test_zscore_is_the_weighted_sum_of_population_z_scores() -> None:
    result = _score(RECORDS, {"x": 1, "y": 2}, "zscore")
    sx, sy = math.sqrt(2 / 3), math.sqrt(200)
    expected = {
        "a": (1 - 2) / sx + 2 * (10 - 20) / sy,
        "b": (2 - 2) / sx + 2 * (10 - 20) / sy,
        "c": (3 - 2) / sx + 2 * (40 - 20) / sy,
    }
    assert _scores(result) == pytest.approx(expected)
    assert [r["id"] for r in result["results"]] == ["c", "b", "a"]
    assert [r["rank"] for r in result["results"]] == [1, 2, 3]


def test_minmax_is_the_weighted_sum_of_scaled_values() -> None:
    result = _score(RECORDS, {"x": 1, "y": 2}, "minmax")
    assert _scores(result) == pytest.approx({"a": 0.0, "b": 0.5, "c": 3.0})


def test_rank_is_the_weighted_mean_of_pandas_percentile_ranks() -> None:
    result = _score(RECORDS, {"x": 1, "y": 3}, "rank")
    # x ranks 1/3, 2/3, 1; y: the two 10s share rank 1.5 -> 0.5, and 40 -> 1.
    expected = {"a": (1 / 3 + 3 * 0.5) / 4, "b": (2 / 3 + 3 * 0.5) / 4, "c": (1 + 3 * 1) / 4}
    assert _scores(result) == pytest.approx(expected)
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [10, 10, 40]}).rank(pct=True)
    by_pandas = (frame["x"] + 3 * frame["y"]) / 4
    assert list(_scores(result).values()) == pytest.approx(sorted(by_pandas, reverse=True))


def test_constant_feature_scores_zero_in_zscore_and_minmax() -> None:
    records = [{"id": str(i), "features": {"k": 5, "x": i}} for i in range(3)]
    for method in ("zscore", "minmax"):
        only_constant = _score(records, {"k": 1}, method)
        assert set(_scores(only_constant).values()) == {0.0}
    stats = _score(records, {"k": 1}, "zscore")["statistics"]["k"]
    assert (stats["std"], stats["min"], stats["max"]) == (0.0, 5.0, 5.0)


def test_rank_ties_share_the_average_rank_and_order_by_id() -> None:
    records = [{"id": name, "features": {"x": 7}} for name in ("b", "c", "a")]
    result = _score(records, {"x": 1}, "rank")
    assert [r["id"] for r in result["results"]] == ["a", "b", "c"]
    assert list(_scores(result).values()) == pytest.approx([2 / 3] * 3)


def test_missing_feature_contributes_nothing_and_is_left_out_of_statistics() -> None:
    records = [
        {"id": "a", "features": {"x": 1, "y": 4}},
        {"id": "b", "features": {"x": 3}},
    ]
    result = _score(records, {"x": 1, "y": 1}, "minmax")
    assert _scores(result) == pytest.approx({"a": 0.0, "b": 1.0})
    assert result["statistics"]["y"]["count"] == 1
    assert result["statistics"]["x"]["count"] == 2


def test_one_record_scores_zero_and_ranks_first() -> None:
    result = _score([{"id": "solo", "features": {"x": 3}}], {"x": 2}, "zscore")
    assert result["results"] == [{"id": "solo", "score": 0.0, "rank": 1}]
    rank = _score([{"id": "solo", "features": {"x": 3}}], {"x": 2}, "rank")
    assert rank["results"][0]["score"] == pytest.approx(1.0)


def test_top_k_limits_results_not_statistics() -> None:
    result = _score(RECORDS, {"x": 1}, "zscore", top_k=1)
    assert [r["id"] for r in result["results"]] == ["c"]
    assert result["statistics"]["x"]["count"] == 3
    larger = _score(RECORDS, {"x": 1}, "zscore", top_k=99)
    assert len(larger["results"]) == 3
    assert larger["count"] == 3


def test_statistics_match_pandas() -> None:
    stats = _score(RECORDS, {"x": 1, "y": 1}, "zscore")["statistics"]["y"]
    series = pd.Series([10, 10, 40])
    assert stats == pytest.approx(
        {
            "count": 3,
            "mean": 20.0,
            "std": float(np.std([10, 10, 40])),
            "min": 10.0,
            "p25": float(series.quantile(0.25)),
            "p50": 10.0,
            "p75": float(series.quantile(0.75)),
            "max": 40.0,
        }
    )


def _errors(body: object, limits: ScoringLimits = LIMITS) -> list[dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ValidationFailed) as err:
        score(raw, limits)
    return err.value.errors


@pytest.mark.parametrize(
    ("body", "loc_part"),
    [
        ({"records": [], "weights": {"x": 1}}, "records"),
        ({"records": [{"id": "a", "features": {"x": "1.5"}}], "weights": {"x": 1}}, "x"),
        ({"records": [{"id": "a", "features": {"x": True}}], "weights": {"x": 1}}, "x"),
        ({"records": [{"id": "a", "features": {"x": 1}}], "weights": {"z": 1}}, "z"),
        ({"records": [{"id": "a", "features": {"x": 1}}], "weights": {}}, "weights"),
        (
            {"records": [{"id": "a", "features": {"x": 1}}], "weights": {"x": 1}, "method": "best"},
            "method",
        ),
        (
            {"records": [{"id": "a", "features": {"x": 1}}], "weights": {"x": 1}, "top_k": 0},
            "top_k",
        ),
        (
            {
                "records": [{"id": "a", "features": {"x": 1}}, {"id": "a", "features": {"x": 2}}],
                "weights": {"x": 1},
            },
            "id",
        ),
        (
            {
                "records": [{"id": "a", "features": {"x": 1}}],
                "weights": {"x": 1, "y": -1},
                "method": "rank",
            },
            "weights",
        ),
        (
            {"records": [{"id": "a", "features": {"x": 1}}], "weights": {"x": 1}, "extra": 1},
            "extra",
        ),
    ],
)
def test_bad_input_is_refused_with_a_located_error(body: dict[str, object], loc_part: str) -> None:
    errors = _errors(body)
    assert any(loc_part in [str(p) for p in e["loc"]] for e in errors), errors
    assert all(e["loc"][0] == "body" for e in errors)


def test_nan_and_infinity_are_refused() -> None:
    for token in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"records": [{"id": "a", "features": {"x": ' + token + b'}}], "weights": {"x": 1}}'
        assert _errors(body)


def test_too_many_records_and_features_are_refused() -> None:
    limits = ScoringLimits(max_records=3, max_features=2)
    many = {
        "records": [{"id": str(i), "features": {"x": i}} for i in range(4)],
        "weights": {"x": 1},
    }
    assert "at most 3 records" in str(_errors(many, limits))
    wide = {
        "records": [{"id": "a", "features": {f"f{i}": i for i in range(3)}}],
        "weights": {"f0": 1},
    }
    assert "at most 2 features" in str(_errors(wide, limits))


def test_malformed_json_is_refused() -> None:
    assert _errors(b'{"records": [')


def test_estimate_pi_is_close_and_bounded_in_memory() -> None:
    result = estimate_pi(2_500_000, seed=7)
    assert result["samples"] == 2_500_000
    assert abs(result["pi_estimate"] - math.pi) < 0.01
    assert result["error"] == pytest.approx(abs(result["pi_estimate"] - math.pi))
