"""Snapshot persistence for the in-memory repository.

Rules:
- Written atomically: the JSON goes to a temporary file in the same directory (so the rename
  cannot cross file systems), is flushed and fsynced, then renamed over the old snapshot, and
  the directory is fsynced so the rename itself survives a power cut. A crash at any point
  leaves either the old snapshot or the new one, never half of one.
- Written every `interval` seconds and once more on shutdown; a failed write (disk full,
  permissions) is logged and counted, removes its temporary file and leaves the old snapshot.
- Loaded at start-up. A snapshot that cannot be parsed, or has another format version, stops
  start-up with a message naming the file — unless `on_corrupt="move-aside"`, which renames it
  to `<file>.corrupt-<time>` and starts empty. It is never overwritten silently.
- One process per snapshot path: a lock file (`<file>.lock`, `flock`) is held for the process's
  life; a second process pointed at the same path refuses to start. The lock is released by the
  kernel if the process dies, so a SIGKILL never leaves a stale lock.
- With a journal (`app/memory/journal.py`, on unless `journal_fsync` is None): every write between
  two snapshots is in the journal; start-up loads the snapshot, replays the journal generations
  it names and later ones, and compacts them into a new snapshot. Each snapshot starts a new
  generation and deletes the ones it covers once it is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiofiles
import aiofiles.os
import orjson
from prometheus_client import Counter, Gauge

from app.core.clock import utc_now_iso
from app.core.exceptions import StartupRefused
from app.core.files import PRIVATE_MODE, private_opener
from app.core.logging import get_logger
from app.memory.journal import (
    FsyncPolicy,
    Journal,
    JournalCorrupt,
    Replayed,
    generation_path,
    generations,
    read_generation,
)
from app.memory.repository import MemoryRepository

log = get_logger(__name__)

FORMAT = "resilient-api.snapshot"
FORMAT_VERSION = 1

SNAPSHOT_WRITES = Counter("snapshot_writes_total", "Snapshot writes, by outcome.", ["outcome"])
SNAPSHOT_AGE = Gauge(
    "snapshot_last_success_timestamp_seconds",
    "Unix time of the last snapshot written successfully.",
    multiprocess_mode="max",
)


def _read_all(path: Path) -> list[Replayed]:
    return list(read_generation(path))


class SnapshotError(StartupRefused):
    """The snapshot or its journal cannot be used; start-up must stop (the message names the
    file)."""


class SnapshotManager:
    """Loads, periodically writes and finally writes the repository's snapshot."""

    def __init__(
        self,
        repository: MemoryRepository,
        path: str,
        *,
        interval_seconds: float,
        on_corrupt: Literal["fail", "move-aside"] = "fail",
        journal_fsync: FsyncPolicy | None = None,
    ) -> None:
        self.repository = repository
        self.path = Path(path)
        self.interval = interval_seconds
        self.on_corrupt = on_corrupt
        self._lock_fd: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.last_written: float | None = None
        # Only a manager that loaded (or found no snapshot) may write: after a failed load,
        # writing would overwrite the very file start-up refused.
        self._loaded = False
        self.journal = Journal(self.path, fsync=journal_fsync) if journal_fsync else None

    # --- start-up -------------------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
        except OSError as exc:
            raise SnapshotError(
                f"snapshot directory {self.path.parent} is not usable: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SnapshotError(
                f"another process is using the snapshot {self.path} (lock {lock_path} is held); "
                "each process needs its own APP_SNAPSHOT_PATH"
            ) from None
        self._lock_fd = fd

    def _check_writable(self) -> None:
        probe = self.path.with_name(f".{self.path.name}.probe-{secrets.token_hex(4)}")
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise SnapshotError(
                f"snapshot directory {self.path.parent} is not writable: {exc.strerror}"
            ) from None

    def _remove_stale_temporaries(self) -> None:
        # Left by a process killed mid-write; we hold the lock, so no one else is writing.
        for stale in self.path.parent.glob(f".{self.path.name}.tmp-*"):
            with contextlib.suppress(OSError):
                stale.unlink()
                log.warning("snapshot_stale_temporary_removed", path=str(stale))

    def _parse(self, raw: bytes) -> dict[str, Any]:
        """The snapshot document, checked; ValueError says what is wrong."""
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"format version {document.get('version')!r}, this build reads {FORMAT_VERSION}"
            )
        collections = document.get("collections")
        if not isinstance(collections, dict) or not all(
            isinstance(c, dict) and isinstance(c.get("records"), list) for c in collections.values()
        ):
            raise ValueError("collections are missing or malformed")
        return document

    async def load(self) -> int:
        """Take the lock, check the directory, restore the snapshot if there is one and replay
        the journal after it.

        Returns the number of records loaded. Raises `SnapshotError` when start-up must stop.
        """
        self._acquire_lock()
        self._check_writable()
        self._remove_stale_temporaries()
        first_generation = await self._load_snapshot()
        self._loaded = True
        if self.journal is not None:
            await self._replay_journal(first_generation)
        loaded = self.repository.size()
        log.info("snapshot_loaded", path=str(self.path), records=loaded)
        return loaded

    async def _load_snapshot(self) -> int:
        """Restore the snapshot; returns the first journal generation it does not cover."""
        if not self.path.exists():
            log.info("snapshot_absent", path=str(self.path))
            return 0
        async with aiofiles.open(self.path, "rb") as file:
            raw = await file.read()
        try:
            document = self._parse(raw)
            self.repository.restore(document["collections"])
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if self.on_corrupt != "move-aside":
                raise SnapshotError(
                    f"snapshot {self.path} cannot be loaded: {reason}. Fix or remove it, or set "
                    "APP_SNAPSHOT_ON_CORRUPT=move-aside to keep it aside and start empty"
                ) from None
            await self._move_aside(self.path, reason)
            return 0
        return int(document.get("journal_generation") or 0)

    async def _move_aside(self, path: Path, reason: str) -> None:
        aside = path.with_name(
            f"{path.name}.corrupt-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        )
        await aiofiles.os.replace(path, aside)
        log.error("snapshot_moved_aside", path=str(path), moved_to=str(aside), reason=reason)

    async def _replay_journal(self, first_generation: int) -> None:
        assert self.journal is not None
        on_disk = await asyncio.to_thread(generations, self.path)
        lines = 0
        for generation in on_disk:
            path = generation_path(self.path, generation)
            if generation < first_generation:
                # Covered by the snapshot (a crash came between its rename and this delete).
                await aiofiles.os.remove(path)
                continue
            try:
                entries = await asyncio.to_thread(_read_all, path)
            except JournalCorrupt as exc:
                if self.on_corrupt != "move-aside":
                    raise SnapshotError(
                        f"journal {exc} cannot be replayed. Fix or remove it, or set "
                        "APP_SNAPSHOT_ON_CORRUPT=move-aside to keep it (and later generations) "
                        "aside and start from what came before it"
                    ) from None
                for later in (g for g in on_disk if g >= generation):
                    await self._move_aside(generation_path(self.path, later), str(exc))
                break
            for entry in entries:
                self.repository.replay(entry)
            lines += len(entries)
        await self.journal.open(max([first_generation - 1, *on_disk]) + 1)
        self.repository.attach_journal(self.journal)
        if lines:
            log.warning("journal_replayed", path=str(self.path), commits=lines)
            # Compact at once: the next start replays nothing, and the files it read go.
            await self.write()

    # --- writing --------------------------------------------------------------------------------

    async def write(self, *, final: bool = False) -> bool:
        """Write one snapshot atomically; False (logged, counted) if it failed.

        `final`: the last snapshot of a clean shutdown (ids reserved but unused are given back).
        """
        if not self._loaded:
            raise SnapshotError(f"snapshot {self.path} was not loaded; refusing to overwrite it")
        async with self._write_lock:
            exported = await self.repository.export(final=final)
            document = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "written_at": utc_now_iso(),
                "journal_generation": exported["journal_generation"],
                "collections": exported["collections"],
            }
            # Serialising a big store is CPU work: keep it off the event loop.
            payload = await asyncio.to_thread(orjson.dumps, document, default=str)
            temporary = self.path.with_name(f".{self.path.name}.tmp-{secrets.token_hex(4)}")
            try:
                async with aiofiles.open(temporary, "wb", opener=private_opener) as file:
                    await file.write(payload)
                    await file.flush()
                    await asyncio.to_thread(os.fsync, file.fileno())
                await aiofiles.os.replace(temporary, self.path)
                await asyncio.to_thread(self._fsync_directory)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    await aiofiles.os.remove(temporary)
                SNAPSHOT_WRITES.labels(outcome="failed").inc()
                log.error(
                    "snapshot_write_failed", path=str(self.path), error=exc.strerror or str(exc)
                )
                return False
            self.last_written = time.time()
            if exported["journal_generation"] is not None:
                await self._delete_generations_before(exported["journal_generation"])
            SNAPSHOT_WRITES.labels(outcome="ok").inc()
            SNAPSHOT_AGE.set(self.last_written)
            log.info("snapshot_written", path=str(self.path), bytes=len(payload))
            return True

    async def _delete_generations_before(self, generation: int) -> None:
        for old in await asyncio.to_thread(generations, self.path):
            if old < generation:
                with contextlib.suppress(FileNotFoundError):
                    await aiofiles.os.remove(generation_path(self.path, old))

    def journal_status(self) -> dict[str, Any]:
        """The journal's health: raises while it cannot write (readiness fails)."""
        if self.journal is None:
            return {"journal": "off"}
        if self.journal.failure is not None:
            raise OSError(f"the journal cannot be written: {self.journal.failure}")
        return {"fsync": self.journal.fsync, "generation": self.journal.generation}

    def _fsync_directory(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def start(self) -> None:
        """Write every `interval` seconds until `stop`."""

        async def periodically() -> None:
            while True:
                await asyncio.sleep(self.interval)
                await self.write()

        self._task = asyncio.get_running_loop().create_task(periodically(), name="snapshots")

    async def stop(self) -> None:
        """Stop the periodic writes, write a last snapshot, and release the lock."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._loaded:
            await self.write(final=True)
        if self.journal is not None:
            await self.journal.close()
        self.release()

    def release(self) -> None:
        """Release the lock file (idempotent)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
