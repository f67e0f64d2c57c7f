"""The audit log: every event the app itself publishes (`user.*`, `scoring.*`, `breaker.*`, ...)
appended as one JSON line to a file, in batches. Events clients publish are theirs, not the
app's record: they never enter it, so no client can rotate real records out by publishing.

The bus hands events to a handler that only appends them to a buffer, so a slow disk never
slows publishing; a writer task drains the buffer with aiofiles every half second (or sooner
when 200 events are waiting), and `stop` writes whatever is left. The buffer is bounded: if the
disk cannot keep up, the oldest unwritten events are dropped and counted.

Each line names the event's actor (`system`). The file is private to the service (0600) and
rotated by size: past `max_bytes` it becomes `<path>.1` (the older ones move up, at most
`backups` are kept), so the log never fills the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

import aiofiles
import aiofiles.os
import orjson
from prometheus_client import Counter

from app.core.files import private_opener
from app.core.logging import get_logger
from app.services.events import EventBus
from app.stores.events import SYSTEM_ACTOR, Event

log = get_logger(__name__)

AUDIT_WRITTEN = Counter("audit_events_written_total", "Events appended to the audit log.")
AUDIT_DROPPED = Counter(
    "audit_events_dropped_total", "Events the audit log could not keep up with."
)


class AuditLog:
    """A bus subscriber that appends events to `path` as JSON lines."""

    def __init__(
        self,
        bus: EventBus,
        path: str,
        *,
        flush_seconds: float = 0.5,
        batch_size: int = 200,
        max_buffered: int = 10_000,
        max_bytes: int = 10 * 1_048_576,
        backups: int = 3,
    ) -> None:
        self.bus = bus
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._size = 0
        self.flush_seconds = flush_seconds
        self.batch_size = batch_size
        self._buffer: deque[Event] = deque()
        self._max_buffered = max_buffered
        self._wakeup = asyncio.Event()
        self._unsubscribe: Callable[[], Awaitable[None]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.written = 0
        self.dropped = 0

    def _collect(self, event: Event) -> None:
        if event.actor != SYSTEM_ACTOR:
            return  # a client's event: not something the app did
        if len(self._buffer) >= self._max_buffered:
            self._buffer.popleft()
            self.dropped += 1
            AUDIT_DROPPED.inc()
        self._buffer.append(event)
        if len(self._buffer) >= self.batch_size:
            self._wakeup.set()

    async def start(self) -> None:
        """Subscribe to every topic and start the writer."""
        with contextlib.suppress(FileNotFoundError):
            self._size = (await aiofiles.os.stat(self.path)).st_size
        self._unsubscribe = self.bus.subscribe("*", self._collect)
        self._writer = asyncio.get_running_loop().create_task(self._write_forever())
        log.info("audit_log_started", path=self.path)

    async def _write_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.flush_seconds)
            self._wakeup.clear()
            try:
                await self.flush()
            except OSError:
                # Keep the events for the next attempt (the buffer stays bounded).
                log.exception("audit_log_write_failed", path=self.path)

    async def flush(self) -> None:
        """Append everything buffered, in one write; on failure the events stay buffered."""
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, deque()
        # Each event's JSON as kept, with its actor added: nothing is parsed again.
        lines = [e.as_json()[:-1] + b',"actor":' + orjson.dumps(e.actor) + b"}\n" for e in batch]
        try:
            await self._append(lines)
        except BaseException:
            # Put them back in front of what arrived meanwhile, keeping the newest if over.
            batch.extend(self._buffer)
            while len(batch) > self._max_buffered:
                batch.popleft()
                self.dropped += 1
                AUDIT_DROPPED.inc()
            self._buffer = batch
            raise
        self.written += len(batch)
        AUDIT_WRITTEN.inc(len(batch))

    async def _append(self, lines: list[bytes]) -> None:
        # Fill the current file up to `max_bytes`, rotate, go on: a file passes the bound only
        # when a single line is larger than it.
        start = 0
        while start < len(lines):
            end, size = start, self._size
            while end < len(lines) and (
                (end == start and size == 0) or size + len(lines[end]) <= self.max_bytes
            ):
                size += len(lines[end])
                end += 1
            if end == start:
                await self._rotate()
                continue
            async with aiofiles.open(self.path, "ab", opener=private_opener) as file:
                await file.write(b"".join(lines[start:end]))
                await file.flush()
            self._size = size
            start = end

    async def _rotate(self) -> None:
        # path.2 -> path.3, path.1 -> path.2, path -> path.1; the oldest beyond `backups` goes.
        for number in range(self.backups, 0, -1):
            source = self.path if number == 1 else f"{self.path}.{number - 1}"
            with contextlib.suppress(FileNotFoundError):
                await aiofiles.os.replace(source, f"{self.path}.{number}")
        self._size = 0
        log.info("audit_log_rotated", path=self.path, backups=self.backups)

    async def stop(self) -> None:
        """Stop listening and write what is left."""
        if self._unsubscribe is not None:
            await self._unsubscribe()  # the handler sees every event published before this
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        try:
            await self.flush()
        except OSError:
            log.exception("audit_log_final_flush_failed", path=self.path, lost=len(self._buffer))
        log.info("audit_log_stopped", written=self.written, dropped=self.dropped)
