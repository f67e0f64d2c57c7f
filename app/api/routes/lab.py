"""Routes the console uses to provoke a behaviour on purpose: a slow subscriber that the bus
must drop events for, and CPU work run on the event loop to show what the process pool
spares. They exist to be watched, so they are not mounted in production (see `create_app`).

Each is bounded so that even when misused it cannot hold the server for long: the slow
subscriber reads for at most a few seconds, and an on-loop run (no bigger than the CPU demo's
largest job) is followed by a pause as long as itself before the next may start.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from app.api.deps import API_PREFIX, EventBusDep
from app.core.exceptions import Overloaded
from app.schemas.problem import problem_responses
from app.schemas.scoring import CpuDemoRequest
from app.services.events import Gap
from app.services.scoring import worker
from app.stores.events import Event

router = APIRouter(prefix=f"{API_PREFIX}/demo", tags=["resilience demos"])

SLOW_TOPIC = "demo.slow-subscriber"
# Past this (plus the time to read a full queue), the subscriber stops waiting for the last
# events (with Redis they come back through the stream reader): the answer says how many never
# arrived.
_DELIVERY_WAIT_SECONDS = 3.0


class SlowSubscriberDemo(BaseModel):
    """A burst published at full speed to a subscriber that reads one event at a time."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"events": 100, "queue": 10, "read_every_ms": 20}]},
    )

    events: StrictInt = Field(default=100, ge=1, le=500, description="Events to publish, 1-500.")
    queue: StrictInt = Field(
        default=10, ge=1, le=64, description="The slow subscriber's queue, in events, 1-64."
    )
    read_every_ms: StrictInt = Field(
        default=20, ge=0, le=50, description="How long it takes to handle one event, 0-50 ms."
    )


class SlowSubscriberResult(BaseModel):
    """What the slow subscriber received, what the bus dropped for it, and the gaps it was
    told about (the same `gap` an SSE client receives)."""

    topic: str
    published: int
    delivered: int
    dropped: int
    never_arrived: int
    gaps: list[dict[str, Any]]
    first_id: str
    last_id: str


class CpuOnLoopResult(BaseModel):
    """The CPU demo's answer when it ran on the event loop: every other request waited."""

    samples: int
    pi_estimate: float
    error: float
    elapsed_ms: float
    loop_blocked_ms: float
    server_pid: int


class _LoopDuty:
    """Keeps on-loop runs to at most half of the loop's time: after a run that held the loop
    for t seconds, the next is refused for t seconds. (A lock would not do: the run never
    awaits, so no other request can even see it running.)"""

    def __init__(self) -> None:
        self.free_at = 0.0

    def check(self) -> None:
        wait = self.free_at - time.monotonic()
        if wait > 0:
            raise Overloaded(
                "An on-loop run just held the event loop; the next may start once as much "
                "time has passed.",
                retry_after=max(1, math.ceil(wait)),
            )

    def ran(self, seconds: float) -> None:
        self.free_at = time.monotonic() + seconds


_loop_duty = _LoopDuty()


@router.post(
    "/slow-subscriber",
    response_model=SlowSubscriberResult,
    responses=problem_responses(422, 503),
    summary="A subscriber that falls behind a burst (not in production)",
)
async def slow_subscriber(payload: SlowSubscriberDemo, bus: EventBusDep) -> SlowSubscriberResult:
    """Subscribes to `demo.slow-subscriber` with a queue of `queue` events, publishes `events`
    events as fast as the bus takes them, and reads one every `read_every_ms`. Publishing never
    waits for the reader: its oldest queued events are dropped, counted in
    `events_dropped_total`, and reported to it as a gap."""
    delivered = 0
    dropped = 0
    gaps: list[dict[str, Any]] = []
    first: Event | None = None
    last: Event | None = None
    accounted = asyncio.Event()  # every event published was either read or reported lost
    pause = payload.read_every_ms / 1000

    async with bus.stream(SLOW_TOPIC, queue_size=payload.queue) as subscription:

        async def read() -> None:
            nonlocal delivered, dropped
            async for item in subscription:
                if isinstance(item, Gap):
                    dropped += item.dropped
                    gaps.append(item.as_dict())
                else:
                    delivered += 1
                if delivered + dropped >= payload.events:
                    accounted.set()
                    return
                await asyncio.sleep(pause)  # the subscriber's slow work

        reader = asyncio.create_task(read())
        try:
            for n in range(1, payload.events + 1):
                event = await bus.publish(SLOW_TOPIC, {"n": n})
                first = first or event
                last = event
                await asyncio.sleep(0)  # the reader takes an event when it can, as a live one would
            try:
                async with asyncio.timeout(_DELIVERY_WAIT_SECONDS + pause * payload.queue):
                    await accounted.wait()
            except TimeoutError:
                pass  # reported as never_arrived
        finally:
            reader.cancel()
    if first is None or last is None:  # pragma: no cover - `events` is at least 1
        raise RuntimeError("nothing was published")
    return SlowSubscriberResult(
        topic=SLOW_TOPIC,
        published=payload.events,
        delivered=delivered,
        dropped=dropped,
        never_arrived=max(0, payload.events - delivered - dropped),
        gaps=gaps,
        first_id=first.id,
        last_id=last.id,
    )


@router.post(
    "/cpu-on-loop",
    response_model=CpuOnLoopResult,
    responses=problem_responses(422, 503),
    summary="The CPU demo run on the event loop, to compare (not in production)",
)
async def cpu_on_loop(payload: CpuDemoRequest) -> CpuOnLoopResult:
    """The same computation as `POST /cpu-intensive`, but inline on the event loop: while it
    runs, no other request of this process is served (watch `/live`). A second
    call sooner after it than the time it held the loop is refused with 503 and `Retry-After`,
    so the loop is never held more than half the time."""
    _loop_duty.check()
    started = time.perf_counter()
    result = worker.estimate_pi(payload.samples, payload.seed)  # blocks the loop, on purpose
    blocked = time.perf_counter() - started
    _loop_duty.ran(blocked)
    blocked_ms = round(blocked * 1000, 2)
    return CpuOnLoopResult(
        samples=result["samples"],
        pi_estimate=result["pi_estimate"],
        error=result["error"],
        elapsed_ms=result["elapsed_ms"],
        loop_blocked_ms=blocked_ms,
        server_pid=os.getpid(),
    )
