"""Concurrency on one event loop: `/async-demo` (N waits take about one) and `/blocking-demo`
(a blocking call in the thread pool leaves the loop free)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import API_PREFIX
from app.schemas.problem import problem_responses

router = APIRouter(prefix=API_PREFIX, tags=["realtime"])


@router.get(
    "/async-demo",
    summary="N concurrent waits take about one wait",
    responses=problem_responses(422),
)
async def async_demo(
    tasks: Annotated[int, Query(ge=1, le=1000)] = 10,
    delay: Annotated[
        float, Query(ge=0, le=5, description="Seconds each simulated I/O waits.")
    ] = 1.0,
) -> dict[str, Any]:
    """Runs `tasks` simulated I/O waits of `delay` seconds concurrently on the event loop."""
    start = time.perf_counter()
    await asyncio.gather(*(asyncio.sleep(delay) for _ in range(tasks)))
    elapsed = time.perf_counter() - start
    return {
        "tasks": tasks,
        "delay": delay,
        "elapsed": round(elapsed, 4),
        "sequential_would_take": round(tasks * delay, 4),
        "speedup": round(tasks * delay / elapsed, 1) if elapsed > 0 else None,
    }


@router.get(
    "/blocking-demo", summary="A blocking call in the thread pool", responses=problem_responses(422)
)
async def blocking_demo(
    delay: Annotated[
        float, Query(ge=0, le=5, description="Seconds the blocking call takes.")
    ] = 1.0,
) -> dict[str, Any]:
    """Runs a blocking sleep of `delay` seconds in the thread pool while counting 10 ms loop ticks:
    about delay / 0.01 ticks means the loop stayed free to serve other requests."""
    ticks = 0
    worst_lag = 0.0

    async def ticker() -> None:
        nonlocal ticks, worst_lag
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            worst_lag = max(worst_lag, loop.time() - before - 0.01)
            ticks += 1

    counting = asyncio.create_task(ticker())
    start = time.perf_counter()
    try:
        await asyncio.to_thread(time.sleep, delay)
    finally:
        counting.cancel()
    elapsed = time.perf_counter() - start
    return {
        "delay": delay,
        "elapsed": round(elapsed, 4),
        "loop_ticks": ticks,
        "expected_ticks": int(delay / 0.01),
        "worst_tick_lag_ms": round(worst_lag * 1000, 2),
        "loop_stayed_responsive": worst_lag < 0.1,
    }
