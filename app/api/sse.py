"""Server-sent events the way every stream here sends them (sse-starlette underneath)."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from prometheus_client import Gauge
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.core.connection_quota import ConnectionQuota, Lease
from app.core.exceptions import TooManyRequests

SSE_CLIENTS = Gauge("sse_clients", "Open server-sent event streams.", multiprocess_mode="livesum")
RETRY_MILLISECONDS = 3000
T = TypeVar("T")


async def _counted(
    events: AsyncIterator[ServerSentEvent], lease: Lease, max_seconds: float
) -> AsyncIterator[ServerSentEvent]:
    SSE_CLIENTS.inc()
    try:
        # The reconnection delay comes first, in an event with no data (nothing is dispatched).
        yield ServerSentEvent(retry=RETRY_MILLISECONDS)
        # A stream's lifetime is bounded: the client reconnects (with Last-Event-ID on the
        # event bus, so nothing is lost) and its place is counted afresh.
        async for event in within(events, max_seconds):
            yield event
    finally:
        # Runs however the stream ends: count reached, shutdown, or the client went away
        # (sse-starlette cancels the generator when it sees the disconnect).
        SSE_CLIENTS.dec()
        lease.release()


async def within(items: AsyncIterator[T], seconds: float) -> AsyncIterator[T]:
    """`items` until they end or `seconds` have passed, whichever comes first (an idle
    stream ends on time too: the wait for the next item is cut)."""
    ends = time.monotonic() + seconds
    try:
        while True:
            remaining = ends - time.monotonic()
            if remaining <= 0:
                return
            try:
                item = await asyncio.wait_for(anext(items), remaining)
            except (StopAsyncIteration, TimeoutError):
                return
            yield item
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


def lease_stream(quota: ConnectionQuota, client: str) -> Lease:
    """A place for one more long-lived stream of `client`, or 429 when it holds its quota."""
    lease = quota.lease(client)
    if lease is None:
        raise TooManyRequests(
            f"At most {quota.per_client} streams per client; close one first.", retry_after=5
        )
    return lease


def sse_response(
    events: AsyncIterator[ServerSentEvent],
    *,
    heartbeat_seconds: float,
    quota: ConnectionQuota,
    client: str,
    max_seconds: float,
) -> Any:
    """A WHATWG event stream: `retry` first, comment heartbeats while idle, no caching, no proxy
    buffering, and a send timeout so a client that stops reading is let go.

    Each client may hold `quota.per_client` streams at once; one more is refused with 429. A
    stream ends after `max_seconds` (at its next event or heartbeat)."""
    lease = lease_stream(quota, client)
    stream = _counted(events, lease, max_seconds)
    # A stream whose response never started never runs its `finally`: give the place back when
    # the generator is collected instead (release is idempotent).
    weakref.finalize(stream, lease.release)
    return EventSourceResponse(
        stream,
        ping=heartbeat_seconds,
        send_timeout=max(5.0, 2 * heartbeat_seconds),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
