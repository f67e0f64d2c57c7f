"""The event log's interface: what an event is, how its id orders it, and where events get
their ids and bounded history (`EventLog`): `MemoryEventLog` (app/services/events.py) or
`RedisEventLog` (app/redis/event_log.py). The bus (app/services/events.py) is built on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

# Who published an event the app published itself (the audit log records it).
SYSTEM_ACTOR = "system"


Position = tuple[int, int]  # an event id as (milliseconds, sequence), ordered


START: Position = (0, 0)  # `Last-Event-ID: 0`: everything still retained


_ID_PART_DIGITS = 20


def parse_event_id(text: str) -> Position | None:
    """The position of an event id (`<ms>-<seq>`, or `<ms>` alone), or None if it is not one.

    ASCII digits only, at most 20 per part (what a Redis stream id holds)."""
    ms, separator, seq = text.partition("-")
    for part in (ms, seq) if separator else (ms,):
        if not part or len(part) > _ID_PART_DIGITS or not (part.isascii() and part.isdigit()):
            return None
    return int(ms), int(seq) if separator else 0


def format_event_id(position: Position) -> str:
    """The id string of a position."""
    return f"{position[0]}-{position[1]}"


@dataclass(frozen=True, slots=True)
class Event:
    """One published event. Its data is kept as the JSON it was published as: that is what the
    history's bytes bound counts, what is sent to subscribers, and a parsed copy (many times
    larger) exists only while someone asks for `data`."""

    id: str
    topic: str
    encoded: bytes  # `data` as JSON
    ts: str
    actor: str = SYSTEM_ACTOR
    position: Position = field(default=START, compare=False)

    @property
    def size(self) -> int:
        """Bytes of `data` as JSON."""
        return len(self.encoded)

    @property
    def data(self) -> Any:
        """The event's data, parsed."""
        return orjson.loads(self.encoded)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form clients see."""
        return {"id": self.id, "topic": self.topic, "data": self.data, "ts": self.ts}

    def as_json(self) -> bytes:
        """`as_dict` encoded, with the data spliced in as kept (never parsed again)."""
        return b"".join(
            (
                b'{"id":',
                orjson.dumps(self.id),
                b',"topic":',
                orjson.dumps(self.topic),
                b',"data":',
                self.encoded,
                b',"ts":',
                orjson.dumps(self.ts),
                b"}",
            )
        )


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """The newest matching events that fit a read's bounds, oldest first; `truncated` when the
    bytes bound left out older ones the count would have taken."""

    events: list[Event]
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Window:
    """What an event log can say about its history, to place a client's `Last-Event-ID`."""

    last: Position | None  # the newest event ever given an id (None: none yet)
    max_deleted: Position  # the newest event no longer retained (START: nothing forgotten)
    boot: Position = START  # ids below this (but START) come from before this log existed


@dataclass(frozen=True, slots=True)
class Resume:
    """What a resuming stream sends before live events: a `gap` notice if any, then `events`."""

    events: list[Event]
    gap: dict[str, Any] | None


Deliver = Callable[[Event], None]


class EventLog(Protocol):
    """Where events get their ids and their bounded history, and how they come back to be
    delivered (at once in memory; from Redis, by a reader, on every replica)."""

    @property
    def available(self) -> bool:
        """False while events cannot be read (Redis unreachable): streams must not start."""
        ...

    async def start(self, deliver: Deliver) -> None:
        """Begin handing every appended event to `deliver`, in id order, exactly once."""
        ...

    async def append(self, topic: str, encoded: bytes, actor: str) -> Event:
        """Give the event (its data as JSON) its id and time and record it."""
        ...

    async def window(self) -> Window:
        """The positions that place a resuming client's id."""
        ...

    async def after(self, position: Position) -> list[Event]:
        """Retained events after `position`, oldest first."""
        ...

    async def recent(self, pattern: str, limit: int, max_bytes: int | None = None) -> HistoryPage:
        """The newest `limit` retained events matching `pattern`, oldest first, as many as fit
        in `max_bytes` of data (at least one)."""
        ...

    def stats(self) -> dict[str, Any]:
        """What /health shows of the log."""
        ...

    async def close(self) -> None:
        """Stop delivering."""
        ...
