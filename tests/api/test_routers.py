"""The routers' table: what each setting serves, and the path sets derived from the routers."""

from __future__ import annotations

from app.api.routers import (
    ANY_HOST,
    LIGHT,
    OPERATIONAL,
    STATIC,
    STREAM_ROUTES,
    breaker_groups,
    mounted_routers,
)
from app.core.config import Settings


def test_operational_paths_are_the_probes_metrics_docs_and_console() -> None:
    for path in ("/live", "/ready", "/health", "/metrics", "/docs", "/openapi.json", "/"):
        assert path in OPERATIONAL
    assert "/api/v1/resilience" in OPERATIONAL
    # The API itself is never exempt.
    for path in ("/api/v1/users", "/api/v1/users/1", "/api/v1/auth/token", "/api/v1/demo/flaky"):
        assert path not in OPERATIONAL
        assert path not in LIGHT
    assert "/static/console/main.js" in LIGHT
    assert "/static/console/main.js" in STATIC
    assert "/live" not in LIGHT  # the probes are never limited at all
    assert set(ANY_HOST.exact) == {"/live", "/ready", "/health", "/health/detailed", "/metrics"}


def test_streams_are_found_from_their_declared_media_types() -> None:
    assert {
        "/api/v1/events/stream",
        "/api/v1/sse/stream",
        "/api/v1/stream/numbers",
    } == STREAM_ROUTES


def test_breaker_groups_come_from_each_routes_static_prefix() -> None:
    groups = dict(breaker_groups(mounted_routers(Settings(env="development"))))
    assert groups["/api/v1/users"] == "users"
    assert "/api/v1/demo/flaky" not in groups  # behind its upstream's own breaker
    assert groups["/api/v1/demo/slow"] == "demos"
    assert "/api/v1/resilience" not in groups
    assert "/live" not in groups
