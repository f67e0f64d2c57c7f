"""The memory store's append-only journal: what makes an acknowledged write survive a crash.

Each committed change (one create, update, delete, or one whole transaction) is one JSON line
of after-images, appended while the collection's lock is held (so the file's order is the order
the changes were made in) and written to the file before the write is acknowledged. A line
reaches the kernel before the client hears "201", so a SIGKILL or an OOM kill loses nothing;
what a host crash or power cut can lose depends on when the file is fsynced (`fsync`, like
Redis's `appendfsync`):

- `always`: every commit is fsynced before it is acknowledged; nothing acknowledged is lost.
- `everysec` (the default): fsynced once a second; a host crash loses at most about a second.
- `no`: the kernel decides (usually within 30 s).

Ids are reserved in blocks (`ID_BLOCK`) by a line that is always fsynced before the first id of
the block is acknowledged: after any crash, ids continue past every id ever handed out.

Writes are batched (group commit): the lines appended while one batch is being written go out
together in the next, with one `write` and at most one `fsync`, on a thread of the journal's own
(one thread keeps the file's order; the event loop never waits for the disk).

The journal is split into generations, `<snapshot>.journal.<n>`: a snapshot starts a new
generation under every collection's lock and names it, so a restart loads the snapshot and
replays the generations from that one on; older generations are deleted once the snapshot is
on disk (that is the compaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from prometheus_client import Counter, Gauge

from app.core.exceptions import StoreUnavailable
from app.core.files import PRIVATE_MODE
from app.core.logging import get_logger

log = get_logger(__name__)

FsyncPolicy = Literal["always", "everysec", "no"]
FORMAT = "resilient-api.journal"
# Ids reserved per durable line: after a crash, ids skip at most this many.
ID_BLOCK = 100
EVERYSEC_INTERVAL = 1.0

JOURNAL_COMMITS = Counter(
    "journal_commits_total", "Memory-store journal commits, by outcome.", ["outcome"]
)
JOURNAL_SYNCED = Gauge(
    "journal_last_fsync_timestamp_seconds",
    "Unix time of the journal's last fsync (what a host crash would keep).",
    multiprocess_mode="max",
)

# One change: (collection, record id, the record after the change or None when deleted).
Change = tuple[str, int, dict[str, Any] | None]


class JournalUnavailable(StoreUnavailable):
    """The journal could not be written: the store refuses writes until the process restarts."""


class JournalCorrupt(ValueError):
    """A journal line other than a torn last one cannot be read."""


@dataclass(frozen=True, slots=True)
class Replayed:
    """What one journal line asks the store to do."""

    changes: list[Change]
    reserved: dict[str, int]


class _Rotate:
    """A marker in the write queue: close this generation and open `generation`."""

    __slots__ = ("generation",)

    def __init__(self, generation: int) -> None:
        self.generation = generation


def generation_path(stem: Path, generation: int) -> Path:
    """The file of one generation."""
    return stem.with_name(f"{stem.name}.journal.{generation}")


def generations(stem: Path) -> list[int]:
    """The generations on disk beside `stem`, oldest first."""
    pattern = re.compile(re.escape(stem.name) + r"\.journal\.(\d{1,18})")
    found = []
    for path in stem.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def read_generation(path: Path) -> Iterator[Replayed]:
    """The lines of one generation, in order. A torn last line (a crash mid-write; its commit
    was never acknowledged) is skipped with a warning; any other bad line raises
    `JournalCorrupt` naming the file and line."""
    lines = path.read_bytes().split(b"\n")
    # A complete file ends with a newline, so the last element is b"" unless the tail is torn.
    last = len(lines) - 1
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            entry = orjson.loads(line)
            if not isinstance(entry, dict):
                raise TypeError("not an object")
            if "format" in entry:
                if entry["format"] != FORMAT:
                    raise TypeError("not a journal")
                continue
            changes = [(str(c), int(i), r) for c, i, r in entry.get("c", ())]
            reserved = {str(k): int(v) for k, v in entry.get("ids", {}).items()}
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            if number - 1 == last:
                log.warning("journal_torn_tail_skipped", path=str(path), line=number)
                return
            raise JournalCorrupt(f"{path} line {number}: {exc}") from None
        yield Replayed(changes, reserved)


class Journal:
    """Appends commits to the current generation and makes them durable per `fsync`."""

    def __init__(self, stem: Path, *, fsync: FsyncPolicy = "everysec") -> None:
        self.stem = stem
        self.fsync = fsync
        self.generation = 0
        self._queue: list[bytes | _Rotate] = []
        self._force_sync = False
        self._waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._syncer: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._fd: int | None = None  # touched only on the journal's thread
        self._dirty = False  # written since the last fsync (journal thread)
        self.failure: str | None = None

    # --- on the event loop ----------------------------------------------------------------------

    async def open(self, generation: int) -> None:
        """Start writing `generation` (a new file) and, with `everysec`, the once-a-second fsync."""
        self.generation = generation
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._open_file, generation)
        if self.fsync == "everysec":
            self._syncer = loop.create_task(self._sync_every_second(), name="journal-fsync")

    def check_writable(self) -> None:
        """Raise `JournalUnavailable` if an earlier write failed (before changing anything)."""
        if self.failure is not None:
            raise JournalUnavailable(
                "The store cannot make writes durable now; retry on another instance.",
                retry_after=30,
            )

    def reserve(self, collection: str, upto: int) -> None:
        """Append a reservation of ids up to `upto`; the batch holding it is always fsynced."""
        self._queue.append(orjson.dumps({"ids": {collection: upto}}) + b"\n")
        self._force_sync = True
        self._kick()

    def commit(self, changes: list[Change]) -> asyncio.Future[None]:
        """Append one commit; the future completes when it is as durable as the policy says."""
        self._queue.append(orjson.dumps({"c": changes}, default=str) + b"\n")
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._kick()
        return waiter

    def rotate(self) -> int:
        """Start the next generation (call under every collection's lock); returns its number.

        Everything appended before goes to the old generation, everything after to the new one.
        """
        self.generation += 1
        self._queue.append(_Rotate(self.generation))
        self._kick()
        return self.generation

    def _kick(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_queued())

    async def _write_queued(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            waiters, self._waiters = self._waiters, []
            sync = self.fsync == "always" or self._force_sync
            self._force_sync = False
            try:
                await loop.run_in_executor(self._executor, self._write, batch, sync)
            except OSError as exc:
                self.failure = exc.strerror or str(exc)
                JOURNAL_COMMITS.labels(outcome="failed").inc(len(waiters))
                log.error("journal_write_failed", path=str(self.stem), error=self.failure)
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(
                            JournalUnavailable(
                                "The write may not be durable; retry with the same "
                                "Idempotency-Key.",
                                retry_after=30,
                            )
                        )
                continue
            JOURNAL_COMMITS.labels(outcome="ok").inc(len(waiters))
            if sync:
                JOURNAL_SYNCED.set(time.time())
            for waiter in waiters:
                if not waiter.done():  # a cancelled request no longer waits
                    waiter.set_result(None)

    async def _sync_every_second(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(EVERYSEC_INTERVAL)
            try:
                if await loop.run_in_executor(self._executor, self._sync_if_dirty):
                    JOURNAL_SYNCED.set(time.time())
            except OSError as exc:
                log.error("journal_fsync_failed", path=str(self.stem), error=exc.strerror)

    async def flush(self) -> None:
        """Wait until everything appended so far is written."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def close(self) -> None:
        """Write what is queued, fsync, and close the file (the last step of a shutdown)."""
        if self._syncer is not None:
            self._syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._syncer
        await self.flush()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_file)
        self._executor.shutdown(wait=True)

    # --- on the journal's thread ----------------------------------------------------------------

    def _open_file(self, generation: int) -> None:
        path = generation_path(self.stem, generation)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
        header = {"format": FORMAT, "version": 1, "generation": generation, "fsync": self.fsync}
        os.write(fd, orjson.dumps(header) + b"\n")
        os.fsync(fd)
        self._fd = fd
        # The new name must survive a power cut as well as its contents.
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _write(self, batch: list[bytes | _Rotate], sync: bool) -> None:
        pending: list[bytes] = []
        for item in batch:
            if isinstance(item, _Rotate):
                self._write_all(b"".join(pending), sync=True)
                pending = []
                self._close_file()
                self._open_file(item.generation)
            else:
                pending.append(item)
        self._write_all(b"".join(pending), sync)

    def _write_all(self, data: bytes, sync: bool) -> None:
        if self._fd is None:
            raise OSError(0, "the journal is closed")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._dirty = self._dirty or bool(data)
        if sync and self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def _sync_if_dirty(self) -> bool:
        if self._fd is None or not self._dirty:
            return False
        os.fsync(self._fd)
        self._dirty = False
        return True

    def _close_file(self) -> None:
        if self._fd is not None:
            if self._dirty:
                os.fsync(self._fd)
                self._dirty = False
            os.close(self._fd)
            self._fd = None
