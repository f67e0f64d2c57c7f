"""Event bus requests and answers."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_DEPTH = 32


def _plain_json(value: Any) -> Any:
    # Python's JSON parser takes NaN, Infinity and 1e400 (as inf); JSON has no such numbers,
    # and storing them would turn them into null. Walked without recursion, depth bounded.
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite (no NaN, Infinity or overflowing values)")
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"at most {MAX_DEPTH} levels of nesting")
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return value


Topic = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$"),
    Field(examples=["orders.created"], description="1-64 of [a-z0-9_.-], dotted."),
]


class EventIn(BaseModel):
    """An event to publish."""

    model_config = ConfigDict(extra="forbid")

    topic: Topic
    data: Annotated[Any, AfterValidator(_plain_json)] = Field(
        default=None,
        description="Any JSON value with finite numbers, nested at most 32 deep; its size is "
        "bounded by APP_EVENT_MAX_BYTES.",
        examples=[{"order": 7, "total": 41.5}],
    )


EventId = Annotated[
    str,
    Field(
        examples=["1764115200000-0"],
        description="`<milliseconds>-<sequence>`: ordered, the same on every replica; the SSE "
        "`id`, to send back as `Last-Event-ID`.",
    ),
]


class EventAccepted(BaseModel):
    """A published event, as stored."""

    id: EventId
    topic: str
    ts: str


class EventOut(BaseModel):
    """An event from the history."""

    id: EventId
    topic: str
    data: Any
    ts: str


class EventList(BaseModel):
    """Recent events, oldest first."""

    items: list[EventOut]
