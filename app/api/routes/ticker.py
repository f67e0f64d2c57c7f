"""`/api/v1/sse/stream`: a ticker over server-sent events, the simplest stream to watch.

Ticks are numbered, and the number is the SSE id, so a reconnecting `EventSource` (which sends
`Last-Event-ID`) continues at the next number: nothing is lost across a reconnect. A plain client
gets exactly that: `tick` events, ids from 1. One that asks (`?handle=true`, as the console does)
first gets a `stream` event with a handle that `POST /api/v1/sse/stream/{handle}/drop` uses to
end that connection from the server side, so a learner can watch the browser reconnect and
resume.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Response
from sse_starlette import ServerSentEvent

from app.api.deps import (
    API_PREFIX,
    LifecycleDep,
    SettingsDep,
    SseAdmission,
    TickersDep,
    accepting_streams,
)
from app.api.sse import sse_response
from app.core.clock import utc_now_iso
from app.core.exceptions import NotFound
from app.core.lifecycle import Lifecycle
from app.schemas.problem import problem_responses
from app.services.tickers import TickerDrops

router = APIRouter(prefix=f"{API_PREFIX}/sse", tags=["realtime"])

MAX_TICK = 10**12


def resume_after(last_event_id: str | None) -> int:
    """The tick a resumed stream continues after: the id when it is a tick number, else 0
    (an id from another stream, or none: start from the first tick)."""
    if last_event_id is None or not last_event_id.isascii() or not last_event_id.isdigit():
        return 0
    n = int(last_event_id)  # at most 64 digits: the header is bounded
    return n if n < MAX_TICK else 0


async def _ticks(
    lifecycle: Lifecycle,
    tickers: TickerDrops,
    interval: float,
    count: int | None,
    after: int,
    announce: bool,
) -> AsyncIterator[ServerSentEvent]:
    with tickers.register() as (handle, dropped):
        if announce:
            # Its id is where this connection starts, so the id a client would resend is the
            # same before and after this event (every event carries an id).
            yield ServerSentEvent(
                data=orjson.dumps({"stream": handle, "resumed_after": after}).decode(),
                event="stream",
                id=str(after),
            )
        n = after
        while count is None or n < count:
            stop = asyncio.ensure_future(lifecycle.wait_for_shutdown())
            drop = asyncio.ensure_future(dropped.wait())
            try:
                await asyncio.wait({stop, drop}, timeout=interval)
            finally:
                for waiter in (stop, drop):
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiter
            if lifecycle.shutting_down or dropped.is_set():
                return
            n += 1
            data = orjson.dumps({"n": n, "ts": utc_now_iso()}).decode()
            yield ServerSentEvent(data=data, event="tick", id=str(n))


@router.get(
    "/stream",
    dependencies=[Depends(accepting_streams)],
    summary="Server-sent events: a tick every interval",
    responses={
        200: {"content": {"text/event-stream": {}}},
        204: {"description": "Resumed past the last tick: the stream is over"},
        **problem_responses(422, 429, 503),
    },
)
async def sse_stream(
    lifecycle: LifecycleDep,
    settings: SettingsDep,
    admission: SseAdmission,
    tickers: TickersDep,
    interval: Annotated[float, Query(ge=0.05, le=60, description="Seconds between events.")] = 1.0,
    count: Annotated[
        int | None, Query(ge=1, le=100_000, description="Events, then the end.")
    ] = None,
    handle: Annotated[
        bool,
        Query(description="First send a `stream` event with this connection's drop handle."),
    ] = False,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=64, description="Resume after it.")
    ] = None,
) -> Any:
    """`tick` events with ids from 1 (after `Last-Event-ID` when resuming) and JSON data; ends
    after tick `count`, at shutdown, when dropped, or when the client leaves. Heartbeat comments
    keep idle connections open. Resuming past tick `count` gets 204, which tells `EventSource`
    to stop reconnecting. With `handle=true`, a `stream` event with this connection's drop
    handle comes first."""
    after = resume_after(last_event_id)
    if count is not None and after >= count:
        return Response(status_code=204)
    return sse_response(
        _ticks(lifecycle, tickers, interval, count, after, handle),
        heartbeat_seconds=settings.sse_heartbeat_seconds,
        quota=admission.quota,
        client=admission.client,
        max_seconds=settings.stream_max_seconds,
    )


@router.post(
    "/stream/{handle}/drop",
    status_code=204,
    responses=problem_responses(404, 422),
    summary="End a ticker stream from the server side",
)
async def drop_stream(
    handle: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")], tickers: TickersDep
) -> None:
    """Ends the ticker connection `handle` names (from its `stream` event), as a restart would:
    the client's `EventSource` reconnects with `Last-Event-ID` and the ticks continue. 404 when
    no such stream is open on this replica."""
    if not tickers.drop(handle):
        raise NotFound("No ticker stream with this handle is open here.")
