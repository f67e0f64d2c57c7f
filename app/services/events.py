"""The event bus: publish/subscribe by topic pattern, with history for resuming streams.

- Publishing never waits on a subscriber: each subscriber has a bounded queue, and when it is
  full the oldest event is dropped (and counted) to make room. A slow reader loses old events
  instead of slowing down everyone else or growing memory.
- A handler subscriber (`subscribe`) is called from its own task; one that raises is logged and
  isolated, and the other subscribers still get the event.
- A stream subscriber (`stream`) is an async iterator, for SSE and the like.
- Every event gets a monotonically increasing id and a timestamp and enters a bounded history,
  so a client reconnecting with `Last-Event-ID` gets what it missed, or learns that the gap is
  older than the history.
- Topics are dotted names (`user.created`); subscriptions take glob patterns (`user.*`, `*`).
  Topics under the roots in `RESERVED_TOPIC_ROOTS` are the app's own: only the app publishes
  them, so a client cannot forge a `user.deleted`.
- Memory is bounded by bytes as well as count: the history keeps at most `history_bytes` of
  event data, each subscriber's queue at most `queue_bytes` (the oldest go first).
- Every event records its `actor` (who published it: `system`, or the publisher's client key)
  for the audit log; clients never see it.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import Counter, Gauge

from app.core.clock import utc_now_iso
from app.core.logging import get_logger

log = get_logger(__name__)


PUBLISHED = Counter("events_published_total", "Events published on the bus.", ["topic"])
DELIVERED = Counter("events_delivered_total", "Events handed to subscribers.", ["topic"])
DROPPED = Counter(
    "events_dropped_total", "Events dropped because a subscriber's queue was full.", ["topic"]
)
SUBSCRIBERS = Gauge(
    "event_subscribers", "Subscribers, by pattern.", ["pattern"], multiprocess_mode="livesum"
)

RESERVED_TOPIC_ROOTS = frozenset({"user", "scoring", "breaker", "system", "audit"})
SYSTEM_ACTOR = "system"

Handler = Callable[["Event"], Awaitable[None] | None]
# What services are given to announce something on the bus (`EventBus.publish` fits it).
Publish = Callable[[str, Any], Awaitable[object]]


def metric_label(topic_or_pattern: str) -> str:
    """The metrics label of a topic or pattern: the app's own topics by name, `*` as itself,
    and every client-chosen one as `client`, so anonymous publishers cannot fill the label set
    (or push the app's own topics out of it)."""
    if topic_or_pattern == "*" or is_reserved_topic(topic_or_pattern):
        return topic_or_pattern
    return "client"


@dataclass(frozen=True, slots=True)
class Event:
    """One published event."""

    id: int
    topic: str
    data: Any
    ts: str
    actor: str = SYSTEM_ACTOR
    size: int = 0  # bytes of `data` as JSON

    def as_dict(self) -> dict[str, Any]:
        """The JSON form clients see."""
        return {"id": self.id, "topic": self.topic, "data": self.data, "ts": self.ts}


def is_reserved_topic(topic: str) -> bool:
    """Whether `topic` belongs to the app (its first dotted part is a reserved root)."""
    return topic.split(".", 1)[0] in RESERVED_TOPIC_ROOTS


class Subscription:
    """A subscriber's bounded queue; iterate it (`async for event in subscription`)."""

    def __init__(self, bus: EventBus, pattern: str, maxsize: int, maxbytes: int) -> None:
        self.bus = bus
        self.pattern = pattern
        self.dropped = 0
        self._queue: deque[Event] = deque()
        self._maxsize = maxsize
        self._maxbytes = maxbytes
        self._bytes = 0
        self._wakeup = asyncio.Event()
        self.closed = False

    def matches(self, topic: str) -> bool:
        """Whether events of `topic` are for this subscriber."""
        return fnmatch.fnmatchcase(topic, self.pattern)

    def offer(self, event: Event) -> list[Event]:
        """Queue `event` without waiting; when over the count or bytes, drop the oldest and
        return what was dropped."""
        dropped: list[Event] = []
        self._queue.append(event)
        self._bytes += event.size
        while len(self._queue) > 1 and (
            len(self._queue) > self._maxsize or self._bytes > self._maxbytes
        ):
            oldest = self._queue.popleft()
            self._bytes -= oldest.size
            dropped.append(oldest)
        self.dropped += len(dropped)
        self._wakeup.set()
        return dropped

    async def get(self) -> Event | None:
        """The next event, waiting for one; None once the subscription is closed."""
        while not self._queue:
            if self.closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        event = self._queue.popleft()
        self._bytes -= event.size
        return event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while (event := await self.get()) is not None:
            yield event

    def close(self) -> None:
        """Stop receiving; a waiting `get` returns None. Idempotent."""
        if not self.closed:
            self.closed = True
            self._wakeup.set()
            self.bus._remove(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """In-process publish/subscribe (the observer pattern) with a bounded history."""

    def __init__(
        self,
        *,
        history_size: int = 1000,
        history_bytes: int = 8 * 1_048_576,
        queue_size: int = 256,
        queue_bytes: int = 1_048_576,
    ) -> None:
        self.history_size = history_size
        self.history_bytes = history_bytes
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self._history: deque[Event] = deque()
        self._history_used = 0
        self._subscriptions: list[Subscription] = []
        self._handler_tasks: dict[Subscription, asyncio.Task[None]] = {}
        self._last_id = 0
        self._label = metric_label
        self.published = 0
        self.delivered = 0
        self.dropped = 0

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 before the first)."""
        return self._last_id

    def stats(self) -> dict[str, Any]:
        """The last id, counts of published, delivered and dropped events, and subscribers."""
        return {
            "last_id": self.last_id,
            "published": self.published,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "subscribers": self.subscriber_counts(),
        }

    def subscriber_counts(self) -> dict[str, int]:
        """Subscribers per pattern."""
        counts: dict[str, int] = {}
        for sub in self._subscriptions:
            counts[sub.pattern] = counts.get(sub.pattern, 0) + 1
        return counts

    def _add(self, subscription: Subscription) -> None:
        self._subscriptions.append(subscription)
        SUBSCRIBERS.labels(pattern=self._label(subscription.pattern)).inc()

    def _remove(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            SUBSCRIBERS.labels(pattern=self._label(subscription.pattern)).dec()

    def stream(self, pattern: str = "*") -> Subscription:
        """A new stream subscription; close it (or use `async with`) when done."""
        subscription = Subscription(self, pattern, self.queue_size, self.queue_bytes)
        self._add(subscription)
        return subscription

    def subscribe(self, pattern: str, handler: Handler) -> Callable[[], Awaitable[None]]:
        """Call `handler` for each matching event, from a task of its own.

        Returns an async `unsubscribe` that stops the subscription after the handler has seen
        every event already queued for it.
        """
        subscription = self.stream(pattern)

        async def consume() -> None:
            async for event in subscription:
                try:
                    result = handler(event)
                    if result is not None:
                        await result
                except Exception:
                    log.exception("event_handler_failed", topic=event.topic, pattern=pattern)

        task = asyncio.get_running_loop().create_task(consume())
        self._handler_tasks[subscription] = task

        async def unsubscribe() -> None:
            subscription.close()  # the consumer ends once the queue is empty
            self._handler_tasks.pop(subscription, None)
            await task

        return unsubscribe

    def close_streams(self) -> int:
        """End every stream subscription (SSE clients), keeping handler subscriptions
        (the audit log) until `close`. For the start of shutdown."""
        streams = [s for s in self._subscriptions if s not in self._handler_tasks]
        for subscription in streams:
            subscription.close()
        return len(streams)

    async def publish(self, topic: str, data: Any, *, actor: str = SYSTEM_ACTOR) -> Event:
        """Record and deliver an event; never waits on subscribers."""
        self._last_id += 1
        size = len(orjson.dumps(data, default=str))
        event = Event(self._last_id, topic, data, utc_now_iso(), actor, size)
        self._history.append(event)
        self._history_used += size
        while len(self._history) > 1 and (
            len(self._history) > self.history_size or self._history_used > self.history_bytes
        ):
            self._history_used -= self._history.popleft().size
        label = self._label(topic)
        self.published += 1
        PUBLISHED.labels(topic=label).inc()
        for subscription in self._subscriptions:
            if subscription.matches(topic):
                dropped = subscription.offer(event)
                self.delivered += 1
                DELIVERED.labels(topic=label).inc()
                for lost in dropped:
                    self.dropped += 1
                    DROPPED.labels(topic=self._label(lost.topic)).inc()
        return event

    def history(self, pattern: str = "*", limit: int = 100) -> list[Event]:
        """The newest `limit` events matching `pattern`, oldest first."""
        matching = [e for e in self._history if fnmatch.fnmatchcase(e.topic, pattern)]
        return matching[-limit:] if limit else []

    def since(self, last_id: int, pattern: str = "*") -> tuple[list[Event], bool]:
        """Events after `last_id` matching `pattern`, and whether some were already forgotten."""
        oldest = self._history[0].id if self._history else self._last_id + 1
        gap = last_id + 1 < oldest and last_id < self._last_id
        events = [
            e for e in self._history if e.id > last_id and fnmatch.fnmatchcase(e.topic, pattern)
        ]
        return events, gap

    async def close(self) -> None:
        """End every subscription and stop the handler tasks (shutdown)."""
        for subscription in list(self._subscriptions):
            subscription.close()
        tasks = list(self._handler_tasks.values())
        self._handler_tasks.clear()
        # Handlers finish what is queued: their iterators end once the queue is empty.
        await asyncio.gather(*tasks, return_exceptions=True)
