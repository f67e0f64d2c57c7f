"""`Paths`: the one way the chain matches exempt and selected paths."""

from __future__ import annotations

from app.http.paths import NO_PATHS, Paths


def test_exact_paths_match_only_themselves() -> None:
    paths = Paths(["/live", "/"])
    assert "/live" in paths
    assert "/" in paths
    assert "/live/" not in paths
    assert "/liveness" not in paths
    assert "/api/v1/users" not in paths


def test_prefixes_match_everything_under_them() -> None:
    paths = Paths(prefixes=["/static/"])
    assert "/static/console/main.js" in paths
    assert "/static" not in paths
    assert "/staticky" not in paths


def test_sets_combine_and_the_empty_set_matches_nothing() -> None:
    both = Paths(["/metrics"]) | Paths(prefixes=["/static/"])
    assert "/metrics" in both
    assert "/static/x.css" in both
    assert "/" not in both
    assert not NO_PATHS
    assert "/" not in NO_PATHS
    assert both == Paths(["/metrics"], ["/static/"])
