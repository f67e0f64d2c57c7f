"""Server-sent events the way every stream here sends them (sse-starlette underneath)."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import Gauge
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.core.connection_quota import ConnectionQuota, Lease
from app.core.exceptions import TooManyRequests

SSE_CLIENTS = Gauge("sse_clients", "Open server-sent event streams.", multiprocess_mode="livesum")
RETRY_MILLISECONDS = 3000


async def _counted(
    events: AsyncIterator[ServerSentEvent], lease: Lease
) -> AsyncIterator[ServerSentEvent]:
    SSE_CLIENTS.inc()
    try:
        # The reconnection delay comes first, in an event with no data (nothing is dispatched).
        yield ServerSentEvent(retry=RETRY_MILLISECONDS)
        async for event in events:
            yield event
    finally:
        # Runs however the stream ends: count reached, shutdown, or the client went away
        # (sse-starlette cancels the generator when it sees the disconnect).
        SSE_CLIENTS.dec()
        lease.release()


def sse_response(
    events: AsyncIterator[ServerSentEvent],
    *,
    heartbeat_seconds: float,
    quota: ConnectionQuota,
    client: str,
) -> Any:
    """A WHATWG event stream: `retry` first, comment heartbeats while idle, no caching, no proxy
    buffering, and a send timeout so a client that stops reading is let go.

    Each client may hold `quota.per_client` streams at once; one more is refused with 429."""
    lease = quota.lease(client)
    if lease is None:
        raise TooManyRequests(
            f"At most {quota.per_client} event streams per client; close one first.",
            retry_after=5,
        )
    stream = _counted(events, lease)
    # A stream whose response never started never runs its `finally`: give the place back when
    # the generator is collected instead (release is idempotent).
    weakref.finalize(stream, lease.release)
    return EventSourceResponse(
        stream,
        ping=heartbeat_seconds,
        send_timeout=max(5.0, 2 * heartbeat_seconds),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
