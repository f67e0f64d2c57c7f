"""`/api/v1/stream/numbers`: a chunked NDJSON stream, sent as it is produced."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from app.api.deps import API_PREFIX, LifecycleDep, SettingsDep, SseAdmission
from app.api.sse import lease_stream, within
from app.schemas.problem import problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/stream", tags=["realtime"])


@router.get(
    "/numbers",
    summary="A chunked NDJSON stream",
    responses={200: {"content": {"application/x-ndjson": {}}}, **problem_responses(422, 429)},
)
async def stream_numbers(
    lifecycle: LifecycleDep,
    settings: SettingsDep,
    admission: SseAdmission,
    count: Annotated[int, Query(ge=1, le=100_000)] = 10,
    interval: Annotated[float, Query(ge=0, le=1, description="Seconds between lines.")] = 0.0,
) -> StreamingResponse:
    """One JSON object per line (`{"n", "square"}`), sent as it is produced. It counts as one
    of the client's streams (429 past them) and ends after `APP_STREAM_MAX_SECONDS`."""
    lease = lease_stream(admission.quota, admission.client)

    async def numbers() -> AsyncIterator[bytes]:
        for n in range(1, count + 1):
            if lifecycle.shutting_down:
                return
            yield orjson.dumps({"n": n, "square": n * n}) + b"\n"
            # Even with no interval, yield to the loop so one big stream cannot starve others.
            await asyncio.sleep(interval)

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for line in within(numbers(), settings.stream_max_seconds):
                yield line
        finally:
            lease.release()

    stream = lines()
    # A response that never started never runs the generator's `finally`.
    weakref.finalize(stream, lease.release)
    return StreamingResponse(stream, media_type="application/x-ndjson")
