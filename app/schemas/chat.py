"""The frames a chat client sends: one JSON object, told apart by `type`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictStr, TypeAdapter


class Ping(BaseModel):
    """`{"type": "ping"}`: answered with a `pong` to the sender alone."""

    type: Literal["ping"]


class Say(BaseModel):
    """`{"type": "message", "text": ...}`: to everyone in the room, the sender included."""

    type: Literal["message"]
    text: Annotated[StrictStr, Field(min_length=1)]


class Direct(BaseModel):
    """`{"type": "direct", "to": NAME, "text": ...}`: to one member of the same room."""

    type: Literal["direct"]
    to: StrictStr
    text: Annotated[StrictStr, Field(min_length=1)]


ClientFrame = Annotated[Ping | Say | Direct, Field(discriminator="type")]
CLIENT_FRAME: TypeAdapter[Ping | Say | Direct] = TypeAdapter(ClientFrame)
