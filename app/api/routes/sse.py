"""`/api/v1/sse/stream`: a ticker over server-sent events, the simplest stream to watch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from sse_starlette import ServerSentEvent

from app.api.deps import API_PREFIX, LifecycleDep, SettingsDep, SseAdmission, accepting_streams
from app.api.sse import sse_response
from app.core.clock import utc_now_iso
from app.core.lifecycle import Lifecycle
from app.schemas.problem import problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/sse", tags=["realtime"])


async def _ticks(
    lifecycle: Lifecycle, interval: float, count: int | None
) -> AsyncIterator[ServerSentEvent]:
    n = 0
    while count is None or n < count:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lifecycle.wait_for_shutdown(), timeout=interval)
        if lifecycle.shutting_down:
            return
        n += 1
        data = orjson.dumps({"n": n, "ts": utc_now_iso()}).decode()
        yield ServerSentEvent(data=data, event="tick", id=str(n))


@router.get(
    "/stream",
    dependencies=[Depends(accepting_streams)],
    summary="Server-sent events: a tick every interval",
    responses={200: {"content": {"text/event-stream": {}}}, **problem_responses(422, 429, 503)},
)
async def sse_stream(
    lifecycle: LifecycleDep,
    settings: SettingsDep,
    admission: SseAdmission,
    interval: Annotated[float, Query(ge=0.05, le=60, description="Seconds between events.")] = 1.0,
    count: Annotated[
        int | None, Query(ge=1, le=100_000, description="Events, then the end.")
    ] = None,
) -> Any:
    """`tick` events with ids from 1 and JSON data; ends after `count` events, at shutdown, or
    when the client leaves. Heartbeat comments keep idle connections open."""
    return sse_response(
        _ticks(lifecycle, interval, count),
        heartbeat_seconds=settings.sse_heartbeat_seconds,
        quota=admission.quota,
        client=admission.client,
    )
