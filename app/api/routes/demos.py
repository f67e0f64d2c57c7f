"""Resilience demos: a flaky upstream behind its own breaker, a slow route, and the live state of
the resilience layers. Three routers, because each sits differently in the chain: the flaky
route's breaker is its upstream's (the `flaky` dependency), `/resilience` is behind none."""

from __future__ import annotations

import asyncio
import time
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import (
    API_PREFIX,
    BreakersDep,
    DependenciesDep,
    FlakyUpstreamDep,
    FleetDep,
    SettingsDep,
)
from app.core.logging import get_logger
from app.schemas.problem import problem_responses

log = get_logger(__name__)

TAGS: list[str | Enum] = ["resilience demos"]
router = APIRouter(prefix=f"{API_PREFIX}/demo", tags=TAGS)
flaky_router = APIRouter(prefix=f"{API_PREFIX}/demo", tags=TAGS)
resilience_router = APIRouter(prefix=API_PREFIX, tags=TAGS)


@flaky_router.get(
    "/flaky", summary="Fails at a chosen rate", responses=problem_responses(422, 500, 503)
)
async def flaky(
    upstream: FlakyUpstreamDep,
    failure_rate: Annotated[float, Query(ge=0, le=1, description="Chance of a 500, 0-1.")] = 0.5,
) -> dict[str, Any]:
    """Calls a simulated upstream that fails (500) with probability `failure_rate`; enough
    failures open its breaker, which then refuses calls at once (503 `circuit-open`)."""
    return await upstream.fetch(failure_rate)


@router.get("/slow", summary="Waits, maybe past the timeout", responses=problem_responses(422, 504))
async def slow(
    delay: Annotated[float, Query(ge=0, le=60, description="Seconds to wait, 0-60.")] = 1.0,
) -> dict[str, Any]:
    """Sleeps `delay` seconds; past the request timeout it is cancelled and answered 504 —
    and its `finally` block still runs (see the `slow_demo_finished` log line)."""
    start = time.perf_counter()
    cancelled = True
    try:
        await asyncio.sleep(delay)
        cancelled = False
        return {"status": "ok", "delay": delay, "elapsed": round(time.perf_counter() - start, 3)}
    finally:
        log.info("slow_demo_finished", delay=delay, cancelled=cancelled)


@resilience_router.get("/resilience", summary="Breaker states, rate-limit and timeout settings")
async def resilience(
    settings: SettingsDep, breakers: BreakersDep, dependencies: DependenciesDep, fleet: FleetDep
) -> dict[str, Any]:
    """What the resilience layers are doing right now: every breaker (route groups, and each
    dependency's own, named after it), and each dependency's bulkhead and recovery probe."""
    return {
        "instance": {"id": settings.instance, "member": fleet.member},
        "breakers": [breaker.snapshot() for breaker in breakers.all()],
        "dependencies": [dependency.snapshot() for dependency in dependencies],
        "rate_limit": {
            "enabled": settings.rate_limit_requests > 0,
            "requests": settings.rate_limit_requests,
            "window_seconds": settings.rate_limit_window_seconds,
            "algorithm": "GCRA (token bucket)",
        },
        "timeout": {"seconds": settings.request_timeout_seconds},
    }


@resilience_router.get("/resilience/fleet", summary="Every replica's breakers and faults")
async def fleet_view(settings: SettingsDep, fleet: FleetDep) -> dict[str, Any]:
    """Each replica's breakers and dependencies, as it reported them within the last 3 s: with
    Redis, every replica sharing it (a replica that stops disappears); in memory, this one.
    `complete` is false when the store could not be read (then this replica alone)."""
    view = await fleet.view()
    return {"shared": settings.store == "redis", **view}
