"""The event history in this process (`MemoryEventLog`); `RedisEventLog`
(app/redis/event_log.py) is its twin for every replica, and app/services/events.py the bus."""

from __future__ import annotations

import fnmatch
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from app.core.clock import utc_now_iso
from app.stores.events import START, Deliver, Event, HistoryPage, Position, Window, format_event_id


class MemoryEventLog:
    """The event history in this process's memory: ids from the clock (so ids of a restarted
    server are newer than any it gave before), bounded by count and by bytes."""

    def __init__(
        self,
        *,
        history_size: int = 1000,
        history_bytes: int = 8 * 1_048_576,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.history_size = history_size
        self.history_bytes = history_bytes
        self._clock_ms = clock_ms
        self._history: deque[Event] = deque()
        self._used = 0
        self._last: Position | None = None
        self._max_deleted = START
        self._boot: Position = (clock_ms(), 0)
        self._deliver: Deliver | None = None

    @property
    def available(self) -> bool:
        """Always: it is in this process."""
        return True

    async def start(self, deliver: Deliver) -> None:
        """Deliver every event as it is appended."""
        self._deliver = deliver

    async def append(self, topic: str, encoded: bytes, actor: str) -> Event:
        """Id, record and deliver at once, in one step (nothing awaits in between)."""
        ms = self._clock_ms()
        if self._last is not None and ms <= self._last[0]:
            position = (self._last[0], self._last[1] + 1)  # same millisecond, or a clock step back
        else:
            position = (ms, 0)
        self._last = position
        event = Event(format_event_id(position), topic, encoded, utc_now_iso(), actor, position)
        self._history.append(event)
        self._used += event.size
        while len(self._history) > 1 and (
            len(self._history) > self.history_size or self._used > self.history_bytes
        ):
            trimmed = self._history.popleft()
            self._used -= trimmed.size
            self._max_deleted = trimmed.position
        if self._deliver is not None:
            self._deliver(event)
        return event

    async def window(self) -> Window:
        """Newest, newest forgotten, and the start of this run."""
        return Window(self._last, self._max_deleted, self._boot)

    async def after(self, position: Position) -> list[Event]:
        """Retained events after `position`, oldest first."""
        return [e for e in self._history if e.position > position]

    async def recent(self, pattern: str, limit: int, max_bytes: int | None = None) -> HistoryPage:
        """The newest `limit` events matching `pattern` within `max_bytes`, oldest first."""
        found: list[Event] = []
        used = 0
        for event in reversed(self._history):
            if len(found) == limit:
                break
            if not fnmatch.fnmatchcase(event.topic, pattern):
                continue
            if found and max_bytes is not None and used + event.size > max_bytes:
                return HistoryPage(found[::-1], truncated=True)
            found.append(event)
            used += event.size
        return HistoryPage(found[::-1])

    def stats(self) -> dict[str, Any]:
        """Retained events and bytes, and the newest id."""
        return {
            "retained": len(self._history),
            "bytes": self._used,
            "last_id": format_event_id(self._last) if self._last else None,
        }

    async def close(self) -> None:
        """Nothing to stop."""
