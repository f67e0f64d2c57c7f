"""The event bus: publish/subscribe by topic pattern, with history for resuming streams.

- Publishing never waits on a subscriber: each subscriber has a bounded queue, and when it is
  full the oldest event is dropped (and counted) to make room. A slow reader loses old events
  instead of slowing down everyone else or growing memory.
- A handler subscriber (`subscribe`) is called from its own task; one that raises is logged and
  isolated, and the other subscribers still get the event.
- A stream subscriber (`stream`) is an async iterator, for SSE and the like.
- Every event gets an id `<milliseconds>-<sequence>` (the form of Redis stream ids, in both
  stores) and a timestamp, and enters a bounded history kept by an `EventLog`: this process's
  memory, or a Redis stream shared by every replica (`app/redis/event_log.py`). A client
  reconnecting with `Last-Event-ID` gets what it missed, or a `gap` event saying what was lost,
  then live events: never silence (`EventBus.resume` has the rules).
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

from app.core.logging import get_logger
from app.stores.events import (
    START,
    SYSTEM_ACTOR,
    Event,
    EventLog,
    HistoryPage,
    Resume,
    parse_event_id,
)

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


def is_reserved_topic(topic: str) -> bool:
    """Whether `topic` belongs to the app (its first dotted part is a reserved root)."""
    return topic.split(".", 1)[0] in RESERVED_TOPIC_ROOTS


@dataclass(frozen=True, slots=True)
class Gap:
    """Events a subscriber fell too far behind to be given: the oldest of its queue, dropped.
    A stream hands this on (a `gap` event) where they would have been, never staying silent."""

    dropped: int
    first_id: str
    last_id: str

    def as_dict(self) -> dict[str, Any]:
        """The `gap` event's data: what was lost, and how to get it back."""
        return {
            "dropped": self.dropped,
            "first_id": self.first_id,
            "last_id": self.last_id,
            "detail": f"{self.dropped} events (ids {self.first_id} to {self.last_id}) were "
            "dropped because this stream fell behind; reconnect with the last id received "
            "as Last-Event-ID to replay them from the history.",
        }


class Subscription:
    """A subscriber's bounded queue; iterate it (`async for item in subscription`): events, and
    a `Gap` in the place of any it had to drop."""

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
        self._gap: Gap | None = None  # dropped since the reader last took from the queue

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
        if dropped:
            self.dropped += len(dropped)
            gap = self._gap
            self._gap = Gap(
                (gap.dropped if gap else 0) + len(dropped),
                gap.first_id if gap else dropped[0].id,
                dropped[-1].id,
            )
        self._wakeup.set()
        return dropped

    async def get(self) -> Event | Gap | None:
        """The next event (or first the `Gap` of what was dropped before it), waiting for one;
        None once the subscription is closed."""
        while not self._queue:
            if self.closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._gap is not None:
            gap, self._gap = self._gap, None
            return gap
        event = self._queue.popleft()
        self._bytes -= event.size
        return event

    def __aiter__(self) -> AsyncIterator[Event | Gap]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event | Gap]:
        while (item := await self.get()) is not None:
            yield item

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
    """Publish/subscribe (the observer pattern) over an `EventLog`: the log gives ids, keeps the
    history and brings every event back here once, where it is fanned out to this process's
    subscribers."""

    def __init__(
        self, log: EventLog, *, queue_size: int = 256, queue_bytes: int = 1_048_576
    ) -> None:
        self.log = log
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self._subscriptions: list[Subscription] = []
        self._handler_tasks: dict[Subscription, asyncio.Task[None]] = {}
        self._last_delivered: str | None = None
        self._label = metric_label
        self.published = 0
        self.delivered = 0
        self.dropped = 0

    @property
    def available(self) -> bool:
        """Whether events can be followed now (the log is reachable)."""
        return self.log.available

    async def start(self) -> None:
        """Start receiving events from the log."""
        await self.log.start(self._deliver)

    def stats(self) -> dict[str, Any]:
        """The last id delivered, counts of published, delivered and dropped events, the
        subscribers, and the log's own figures."""
        return {
            "last_delivered_id": self._last_delivered,
            "log": self.log.stats(),
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

    def stream(self, pattern: str = "*", *, queue_size: int | None = None) -> Subscription:
        """A new stream subscription (its queue holds `queue_size` events, by default the
        bus's); close it (or use `async with`) when done."""
        size = self.queue_size if queue_size is None else min(queue_size, self.queue_size)
        subscription = Subscription(self, pattern, size, self.queue_bytes)
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
                if isinstance(event, Gap):
                    log.warning("event_handler_fell_behind", pattern=pattern, dropped=event.dropped)
                    continue
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
        """Record the event in the log; subscribers get it when the log hands it back (at once
        in memory). Never waits on subscribers."""
        encoded = orjson.dumps(data, default=str)
        event = await self.log.append(topic, encoded, actor)
        self.published += 1
        PUBLISHED.labels(topic=self._label(topic)).inc()
        return event

    def _deliver(self, event: Event) -> None:
        self._last_delivered = event.id
        label = self._label(event.topic)
        for subscription in self._subscriptions:
            if subscription.matches(event.topic):
                dropped = subscription.offer(event)
                self.delivered += 1
                DELIVERED.labels(topic=label).inc()
                for lost in dropped:
                    self.dropped += 1
                    DROPPED.labels(topic=self._label(lost.topic)).inc()

    async def history(self, pattern: str = "*", limit: int = 100) -> list[Event]:
        """The newest `limit` events matching `pattern`, oldest first."""
        return (await self.history_page(pattern, limit)).events

    async def history_page(
        self, pattern: str = "*", limit: int = 100, max_bytes: int | None = None
    ) -> HistoryPage:
        """The newest `limit` events matching `pattern` that fit in `max_bytes`, oldest first."""
        return await self.log.recent(pattern, limit, max_bytes) if limit else HistoryPage([])

    async def resume(self, last_event_id: str, pattern: str = "*") -> Resume:
        """What a stream resuming after `last_event_id` sends before live events.

        - `0`: every retained event (a `gap` first if some were already forgotten);
        - an id the history holds or follows: the events after it, with a `gap` first if some
          of those were forgotten (trimmed from a bounded history);
        - an id from before this log existed (memory: an earlier run of the server): a `gap`,
          then every retained event, all of which came after it;
        - an id the server cannot place (newer than any event, or not an event id at all): a
          `gap` saying so, then live events only.
        In every case live events follow: a resumed stream never goes silent.
        """
        position = parse_event_id(last_event_id)
        window = await self.log.window()
        gap: dict[str, Any] | None = None
        if position is None:
            return Resume([], _gap(last_event_id, "is not an event id; live events follow"))
        if START < position < window.boot:
            gap = _gap(last_event_id, "is from before this server started; its events are gone")
            position = START
        elif position != START and (window.last is None or position > window.last):
            return Resume([], _gap(last_event_id, "is unknown to this server; live events follow"))
        elif window.max_deleted > position:
            gap = _gap(last_event_id, "is older than the history: events after it were dropped")
        events = [
            e for e in await self.log.after(position) if fnmatch.fnmatchcase(e.topic, pattern)
        ]
        if gap is not None:
            gap["oldest_available_id"] = events[0].id if events else None
        return Resume(events, gap)

    async def close(self) -> None:
        """End every subscription and stop the handler tasks (shutdown)."""
        await self.log.close()
        for subscription in list(self._subscriptions):
            subscription.close()
        tasks = list(self._handler_tasks.values())
        self._handler_tasks.clear()
        # Handlers finish what is queued: their iterators end once the queue is empty.
        await asyncio.gather(*tasks, return_exceptions=True)


def _gap(last_event_id: str, detail: str) -> dict[str, Any]:
    return {"last_event_id": last_event_id[:64], "detail": f"Last-Event-ID {detail}."}
