"""`/api/v1/events`: publish on the event bus, read its history, follow it live over SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Response, status
from sse_starlette import ServerSentEvent

from app.api.deps import (
    API_PREFIX,
    ClientKey,
    EventBusDep,
    SettingsDep,
    SseAdmission,
    accepting_streams,
)
from app.api.sse import sse_response
from app.core.exceptions import Forbidden, StoreUnavailable
from app.schemas.events import EventAccepted, EventIn, EventList
from app.schemas.problem import problem_responses
from app.services.events import EventBus, Gap, is_reserved_topic
from app.stores.events import Event

router = APIRouter(prefix=f"{API_PREFIX}/events", tags=["events"])

TopicPattern = Annotated[
    str,
    Query(
        pattern=r"^[a-z0-9_.*-]{1,64}$",
        description="A topic or glob pattern (`user.*`); `*` for everything.",
    ),
]


def _sse(event: Event) -> ServerSentEvent:
    return ServerSentEvent(data=event.as_json().decode(), event=event.topic, id=str(event.id))


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventAccepted,
    responses=problem_responses(403, 413, 422),
    summary="Publish an event",
)
async def publish(payload: EventIn, bus: EventBusDep, client_key: ClientKey) -> EventAccepted:
    """Publishes at once; subscribers receive it without the publisher waiting for them.

    Topics under `user.`, `scoring.`, `breaker.`, `system.` and `audit.` are the app's own: 403.
    """
    if is_reserved_topic(payload.topic):
        raise Forbidden(f"The topic {payload.topic} is reserved for events the app publishes.")
    event = await bus.publish(payload.topic, payload.data, actor=client_key)
    return EventAccepted(id=event.id, topic=event.topic, ts=event.ts)


@router.get("", response_model=EventList, responses=problem_responses(422), summary="Recent events")
async def history(
    bus: EventBusDep,
    settings: SettingsDep,
    topic: TopicPattern = "*",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The newest `limit` events whose topic matches, oldest first (the history is bounded), as
    many as fit in `APP_EVENT_READ_MAX_BYTES` of data: `truncated` says older ones were left out
    (at least one event is always sent)."""
    page = await bus.history_page(topic, limit, settings.event_read_max_bytes)
    # Each event's data is spliced in as it was stored: a read never parses or re-encodes it.
    body = b"".join(
        (
            b'{"items":[',
            b",".join(event.as_json() for event in page.events),
            b'],"truncated":',
            b"true" if page.truncated else b"false",
            b"}",
        )
    )
    return Response(body, media_type="application/json")


def _gap_event(gap: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(gap).decode(), event="gap")


async def _live(
    bus: EventBus, last_event_id: str | None, pattern: str
) -> AsyncIterator[ServerSentEvent]:
    # Subscribe before reading the history, so nothing published in between is lost (what
    # arrives twice is skipped by id); inside the generator, so a stream that never starts
    # leaves nothing behind.
    async with bus.stream(pattern) as subscription:
        sent = None
        if last_event_id is not None:
            try:
                resume = await bus.resume(last_event_id, pattern)
            except StoreUnavailable:
                return  # end cleanly: EventSource reconnects with the same Last-Event-ID
            if resume.gap is not None:
                yield _gap_event(resume.gap)
            for event in resume.events:
                sent = event.position
                yield _sse(event)
        async for item in subscription:
            if isinstance(item, Gap):
                # This stream fell behind and its oldest queued events were dropped: say so
                # where they would have been (the client can replay them from the history).
                yield _gap_event(item.as_dict())
            elif sent is None or item.position > sent:
                yield _sse(item)


@router.get(
    "/stream",
    summary="Follow events live (SSE)",
    dependencies=[Depends(accepting_streams)],
    responses={
        200: {"content": {"text/event-stream": {}}},
        **problem_responses(422, 429, 503),
    },
)
async def stream(
    bus: EventBusDep,
    settings: SettingsDep,
    admission: SseAdmission,
    topic: TopicPattern = "*",
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Any:
    """Each event's SSE `id` is its bus id; reconnect with `Last-Event-ID` to get what you
    missed from the history (`0`: all of it), with a `gap` event first if some of it is gone
    or the id cannot be placed; live events always follow."""
    if not bus.available:
        raise StoreUnavailable("The event stream cannot be followed right now; retry shortly.")
    return sse_response(
        _live(bus, last_event_id, topic),
        heartbeat_seconds=settings.sse_heartbeat_seconds,
        quota=admission.quota,
        client=admission.client,
        max_seconds=settings.stream_max_seconds,
    )
