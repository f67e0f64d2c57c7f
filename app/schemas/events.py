"""Event bus requests and answers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Topic = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$"),
    Field(examples=["orders.created"], description="1-64 of [a-z0-9_.-], dotted."),
]


class EventIn(BaseModel):
    """An event to publish."""

    model_config = ConfigDict(extra="forbid")

    topic: Topic
    data: Any = Field(default=None, description="Any JSON value.")


class EventAccepted(BaseModel):
    """A published event, as stored."""

    id: int
    topic: str
    ts: str


class EventOut(BaseModel):
    """An event from the history."""

    id: int
    topic: str
    data: Any
    ts: str


class EventList(BaseModel):
    """Recent events, oldest first."""

    items: list[EventOut]
