"""Event bus requests and answers."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_DEPTH = 32


# I-JSON (RFC 7493): integers a double represents exactly; anything larger cannot be stored or
# sent back as the same number (the encoder refused it: a 500).
MAX_SAFE_INTEGER = 2**53 - 1


def _plain_json(value: Any) -> Any:
    # Python's JSON parser takes NaN, Infinity, 1e400 (as inf) and integers of any size; JSON
    # interchange (I-JSON) has none of them. Walked without recursion, depth bounded; an error
    # names the member it found (`data.a.0`).
    pending: list[tuple[Any, int, str]] = [(value, 1, "data")]
    while pending:
        item, depth, where = pending.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
            raise ValueError(f"{where}: integers must be within -(2**53-1) and 2**53-1 (I-JSON)")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(
                f"{where}: numbers must be finite (no NaN, Infinity or overflowing values)"
            )
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"at most {MAX_DEPTH} levels of nesting")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            pending.extend(
                (child, depth + 1, f"{where}.{str(key)[:64]}") for key, child in children
            )
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
        description="Any JSON value with I-JSON numbers (finite; integers within "
        "±(2^53-1)), nested at most 32 deep; its size is bounded by APP_EVENT_MAX_BYTES.",
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
    truncated: bool = Field(
        default=False,
        description="Older matching events were left out to keep the page within "
        "APP_EVENT_READ_MAX_BYTES of data; the items are the newest that fit.",
    )
