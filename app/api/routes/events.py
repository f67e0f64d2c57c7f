"""`/api/v1/events`: publish on the event bus, read its history, follow it live over SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, status
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
from app.core.exceptions import BadRequest, Forbidden
from app.core.parsing import ascii_int
from app.schemas.events import EventAccepted, EventIn, EventList, EventOut
from app.schemas.problem import problem_responses
from app.services.events import Event, EventBus, is_reserved_topic

router = APIRouter(prefix=f"{API_PREFIX}/events", tags=["events"])

TopicPattern = Annotated[
    str,
    Query(
        pattern=r"^[a-z0-9_.*-]{1,64}$",
        description="A topic or glob pattern (`user.*`); `*` for everything.",
    ),
]


def _sse(event: Event) -> ServerSentEvent:
    return ServerSentEvent(
        data=orjson.dumps(event.as_dict()).decode(), event=event.topic, id=str(event.id)
    )


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
    topic: TopicPattern = "*",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventList:
    """The newest `limit` events whose topic matches, oldest first (the history is bounded)."""
    return EventList(items=[EventOut(**e.as_dict()) for e in bus.history(topic, limit)])


def _last_event_id(header: str | None) -> int | None:
    if header is None or header == "":
        return None
    last_id = ascii_int(header)
    if last_id is None:
        raise BadRequest("Last-Event-ID must be the id of an event: 1-18 ASCII digits.")
    return last_id


async def _live(bus: EventBus, last_id: int | None, pattern: str) -> AsyncIterator[ServerSentEvent]:
    # Subscribe before reading the history, in one step with it, so nothing published in
    # between is lost; inside the generator, so a stream that never starts leaves nothing.
    async with bus.stream(pattern) as subscription:
        sent = bus.last_id if last_id is None else last_id
        if last_id is not None:
            missed, gap = bus.since(last_id, pattern)
            if gap:
                oldest = missed[0].id if missed else bus.last_id + 1
                data = {
                    "last_event_id": last_id,
                    "oldest_available_id": oldest,
                    "detail": "Events between were dropped from the history.",
                }
                yield ServerSentEvent(data=orjson.dumps(data).decode(), event="gap")
            for event in missed:
                sent = event.id
                yield _sse(event)
        async for event in subscription:
            if event.id > sent:  # already sent from the history
                sent = event.id
                yield _sse(event)


@router.get(
    "/stream",
    summary="Follow events live (SSE)",
    dependencies=[Depends(accepting_streams)],
    responses={
        200: {"content": {"text/event-stream": {}}},
        **problem_responses(400, 422, 429, 503),
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
    missed from the history, or a `gap` event if it is older than the history."""
    last_id = _last_event_id(last_event_id)
    return sse_response(
        _live(bus, last_id, topic),
        heartbeat_seconds=settings.sse_heartbeat_seconds,
        quota=admission.quota,
        client=admission.client,
    )
