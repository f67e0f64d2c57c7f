"""The event history in a Redis stream: one order and one set of ids for every replica.

Why one stream for every topic: a subscriber's pattern (`*`, `user.*`) can span topics, and
one stream gives every replica the same total order for free; with one stream per topic, a
`*` subscriber would have to merge streams whose ids interleave. The rates here (events are
bounded in size, and published by people and the app) are far below one stream's capacity.

- `append` is one script: `XADD`, then, past the history's size or its bytes of data (counted
  in a key beside the stream), it trims the oldest entries and notes the newest id it trimmed
  (exact, so the history is what the settings say, in count and in bytes). The id comes from
  Redis, so ids are the same on every replica and survive a restart of the app.
- A reader task per replica follows the stream with `XREAD BLOCK` from the last id it handed
  over, and hands every entry to the bus in stream order, exactly once: every subscriber on
  every replica sees every matching event once and in order.
- When Redis cannot be read the log turns unavailable: the bus ends open streams (so
  `EventSource` reconnects, to a healthy replica if there is one), `/ready` turns 503, and new
  streams are refused. The reader keeps trying; once back it continues after the last entry it
  handed over, so handler subscribers (the audit log) miss nothing still in the stream.
- `window` reads the newest id and the newest trimmed id, which tells exactly whether events
  after a client's id are gone (Redis's own `max-deleted-entry-id` counts `XDEL`, not trims).
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Tracer
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.clock import utc_now_iso
from app.core.logging import get_logger
from app.redis.client import RedisClient, settle, stop_task
from app.stores.events import (
    START,
    Deliver,
    Event,
    HistoryPage,
    Position,
    Window,
    format_event_id,
    parse_event_id,
)

log = get_logger(__name__)

READER_RECONNECTS = Counter(
    "event_log_reader_reconnects_total",
    "Times the Redis event reader lost Redis and started again.",
)
_BLOCK_MS = 2000

# KEYS: the stream, the key holding the newest trimmed id, the key counting the stream's bytes
# of data. ARGV: the history size, its bytes, this entry's bytes of data, then the entry's
# field/value pairs. Past either bound it trims the oldest entries, noting the newest trimmed
# id, so the stream holds what the settings say in count and in bytes. Returns the new id.
_APPEND = """
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))
local used = redis.call('INCRBY', KEYS[3], tonumber(ARGV[3]))
local count = redis.call('XLEN', KEYS[1])
local size, budget = tonumber(ARGV[1]), tonumber(ARGV[2])
while count > 1 and (count > size or used > budget) do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  local fields, bytes = oldest[2], 0
  for i = 1, #fields, 2 do
    if fields[i] == 'd' then bytes = #fields[i + 1] end
  end
  redis.call('XDEL', KEYS[1], oldest[1])
  redis.call('SET', KEYS[2], oldest[1])
  used = redis.call('DECRBY', KEYS[3], bytes)
  count = count - 1
end
return id
"""
_BATCH = 500
# Entries a history read fetches at a time: at most 64 x APP_EVENT_MAX_BYTES (1 MiB) per reply.
_RECENT_CHUNK = 64


def _event(raw_id: Any, fields: Any) -> Event:
    # redis-py types replies loosely; an entry is (id, {field: value}) in bytes.
    event_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
    position = parse_event_id(event_id) or START
    # The data stays the JSON it was stored as: a history read never parses it.
    return Event(
        event_id,
        fields[b"t"].decode(),
        bytes(fields[b"d"]),
        fields[b"ts"].decode(),
        fields[b"a"].decode(),
        position,
    )


def _position(value: Any) -> Position:
    if value is None:
        return START
    text = value.decode() if isinstance(value, bytes) else str(value)
    return parse_event_id(text) or START


def _traced_delivery(
    tracer: Tracer, deliver: Deliver, event: Event, traceparent: bytes | None
) -> None:
    """Hand `event` on in a span of its own, linked to the publisher's span (on this replica or
    another): the delivery is not part of the request that published it."""
    links = []
    if traceparent:
        carrier = {"traceparent": traceparent.decode("latin-1")}
        published = trace.get_current_span(propagate.extract(carrier)).get_span_context()
        if published.is_valid:
            links.append(Link(published))
    with tracer.start_as_current_span(
        "deliver events",
        context=Context(),
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={"messaging.message.id": event.id, "app.event.topic": event.topic},
    ):
        deliver(event)


class RedisEventLog:
    """The `EventLog` in one Redis stream, shared by every replica."""

    def __init__(
        self,
        client: RedisClient,
        *,
        history_size: int,
        history_bytes: int = 8 * 1_048_576,
        on_lost: Callable[[], object] = lambda: None,
        retry_seconds: float = 0.5,
    ) -> None:
        self._client = client
        self._key = f"{client.prefix}events"
        self._trimmed_key = f"{client.prefix}events:trimmed"
        self._bytes_key = f"{client.prefix}events:bytes"
        self._append = client.script(_APPEND)
        self.history_size = history_size
        self.history_bytes = history_bytes
        self._on_lost = on_lost
        self._retry_seconds = retry_seconds
        self._deliver: Deliver | None = None
        self._task: asyncio.Task[None] | None = None
        self._reader: Redis | None = None
        self._last_handed: str = "0-0"
        self._connected = False
        self.lost_since: float | None = None

    @property
    def available(self) -> bool:
        """Whether the reader is following the stream."""
        return self._connected

    async def start(self, deliver: Deliver) -> None:
        """Follow the stream from its newest entry (what came before is history, not news)."""
        self._deliver = deliver
        newest: Any = await self._client.call(
            "events.newest", lambda r: r.xrevrange(self._key, count=1), idempotent=True
        )
        if newest:
            raw = newest[0][0]
            self._last_handed = raw.decode() if isinstance(raw, bytes) else raw
        self._connected = True
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        reader = self._client.dedicated(_BLOCK_MS / 1000 + self._client.timeout)
        self._reader = reader
        try:
            while True:
                try:
                    replies: Any = await reader.xread(
                        {self._key: self._last_handed}, count=_BATCH, block=_BLOCK_MS
                    )
                except (RedisError, OSError) as exc:
                    await self._lost(exc)
                    continue
                if not self._connected:
                    self._connected = True
                    log.info("event_reader_recovered", after_seconds=self._outage())
                for _, entries in replies or ():
                    for raw_id, fields in entries:
                        event = _event(raw_id, fields)
                        self._last_handed = event.id
                        deliver, tracer = self._deliver, self._client.tracer
                        if deliver is None:
                            continue
                        if tracer is None:
                            deliver(event)
                        else:
                            _traced_delivery(tracer, deliver, event, fields.get(b"tp"))
        finally:
            await reader.aclose()

    def _outage(self) -> float:
        lost, self.lost_since = self.lost_since, None
        return round(time.monotonic() - lost, 2) if lost is not None else 0.0

    async def _lost(self, exc: BaseException) -> None:
        if self._connected:
            self._connected = False
            self.lost_since = time.monotonic()
            READER_RECONNECTS.inc()
            log.warning("event_reader_lost_redis", error=type(exc).__name__)
            self._on_lost()
        await asyncio.sleep(self._retry_seconds)

    async def append(self, topic: str, encoded: bytes, actor: str) -> Event:
        """`XADD` with the history bound; the id is Redis's."""
        ts = utc_now_iso()
        args: list[Any] = [self.history_size, self.history_bytes, len(encoded)]
        args += ["t", topic, "d", encoded, "ts", ts, "a", actor]
        keys = [self._key, self._trimmed_key, self._bytes_key]
        tracer = self._client.tracer
        if tracer is None:
            raw = await self._client.call(
                "events.append", lambda r: self._append(keys, args, r), durable=True
            )
        else:
            with tracer.start_as_current_span(
                "publish events",
                kind=SpanKind.PRODUCER,
                attributes={"app.event.topic": topic},
            ):
                # The publisher's span travels with the entry, for every replica's delivery.
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                if "traceparent" in carrier:
                    args += ["tp", carrier["traceparent"]]
                raw = await self._client.call(
                    "events.append", lambda r: self._append(keys, args, r), durable=True
                )
        event_id = raw.decode() if isinstance(raw, bytes) else raw
        return Event(event_id, topic, encoded, ts, actor, _position(event_id))

    async def window(self) -> Window:
        """The newest entry's id and the newest trimmed id, read together."""

        async def read(r: Redis) -> Any:
            async with r.pipeline(transaction=True) as pipe:
                pipe.xrevrange(self._key, count=1)
                pipe.get(self._trimmed_key)
                return await pipe.execute()

        newest, trimmed = await self._client.call("events.window", read, idempotent=True)
        last = _position(newest[0][0]) if newest else None
        return Window(last, _position(trimmed))

    async def after(self, position: Position) -> list[Event]:
        """Retained entries after `position` (exclusive), oldest first."""
        start = "(" + format_event_id(position) if position != START else "-"
        entries: Any = await self._client.call(
            "events.after",
            lambda r: r.xrange(self._key, min=start, max="+", count=self.history_size),
            idempotent=True,
        )
        return [_event(raw_id, fields) for raw_id, fields in entries]

    async def recent(self, pattern: str, limit: int, max_bytes: int | None = None) -> HistoryPage:
        """The newest `limit` matching entries within `max_bytes` of data, oldest first: read
        newest first in small chunks, and stop as soon as there are enough (a request never
        pulls more of the history than it answers, nor parses any event's data)."""
        found: list[Event] = []
        used = 0
        cursor = "+"
        scanned = 0
        while len(found) < limit and scanned < self.history_size:
            entries = await self._newest_before(cursor, _RECENT_CHUNK)
            for raw_id, fields in entries:
                if not fnmatch.fnmatchcase(fields[b"t"].decode(), pattern):
                    continue
                size = len(fields[b"d"])
                if found and max_bytes is not None and used + size > max_bytes:
                    return HistoryPage(found[::-1], truncated=True)
                found.append(_event(raw_id, fields))
                used += size
                if len(found) == limit:
                    break
            scanned += len(entries)
            if len(entries) < _RECENT_CHUNK:
                break
            last = entries[-1][0]
            cursor = "(" + (last.decode() if isinstance(last, bytes) else last)
        return HistoryPage(found[::-1])

    async def _newest_before(self, top: str, count: int) -> Any:
        return await self._client.call(
            "events.recent",
            lambda r: r.xrevrange(self._key, max=top, min="-", count=count),
            idempotent=True,
        )

    def stats(self) -> dict[str, Any]:
        """Whether the reader follows the stream, and the last id it handed over."""
        return {"following": self._connected, "last_handed_id": self._last_handed}

    async def close(self) -> None:
        """Stop the reader."""
        task, self._task = self._task, None
        if task is None:
            return
        if await stop_task(task):
            return
        if self._reader is not None:
            await settle(self._reader.connection_pool.disconnect(), 1.0, "event reader")
            await asyncio.wait({task}, timeout=1.0)
        if not task.done():  # pragma: no cover - nothing left to try; do not hang shutdown
            log.warning("event_reader_did_not_stop")
