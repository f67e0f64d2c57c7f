"""Snapshot persistence: round trip, atomic replacement, and every fault the issue lists."""

from __future__ import annotations

import errno
from pathlib import Path

import aiofiles.os
import orjson
import pytest

from app.memory.repository import MemoryRepository
from app.memory.snapshots import FORMAT, SnapshotError, SnapshotManager
from app.stores.records import CollectionSpec, UniqueField

SPEC = CollectionSpec("users", unique=(UniqueField("email", case_insensitive=True),))


def _repo() -> MemoryRepository:
    repository = MemoryRepository()
    repository.declare(SPEC)
    return repository


async def _filled(count: int = 3) -> MemoryRepository:
    repository = _repo()
    for i in range(count):
        await repository.create("users", {"email": f"u{i}@x.io"})
    await repository.update("users", 1, {"email": "changed@x.io"})
    await repository.delete("users", 2)
    return repository


async def _written_snapshot(tmp_path: Path) -> tuple[SnapshotManager, Path, bytes]:
    """A manager that has written one snapshot of `_filled()`, its path and its bytes."""
    path = tmp_path / "snap.json"
    manager = SnapshotManager(await _filled(), str(path), interval_seconds=60)
    await manager.load()
    await manager.write()
    return manager, path, path.read_bytes()


async def test_round_trip_keeps_records_versions_and_id_counter(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    original = await _filled()
    writer = SnapshotManager(original, str(path), interval_seconds=60)
    await writer.load()
    assert await writer.write()
    writer.release()

    restored = _repo()
    reader = SnapshotManager(restored, str(path), interval_seconds=60)
    assert await reader.load() == 2
    assert await restored.list("users") == await original.list("users")
    assert (await restored.get("users", 1) or {})["version"] == 2
    assert (await restored.create("users", {"email": "new@x.io"}))["id"] == 4  # never reuses 2 or 3
    with pytest.raises(Exception, match="unique"):
        await restored.create("users", {"email": "CHANGED@x.io"})
    assert await reader.write()  # a manager that loaded a snapshot may replace it
    reader.release()


async def test_a_crash_between_write_and_rename_leaves_the_old_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, path, before = await _written_snapshot(tmp_path)
    await manager.repository.create("users", {"email": "late@x.io"})

    async def killed(*args: object) -> None:
        raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this point runs

    monkeypatch.setattr(aiofiles.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        await manager.write()
    manager.release()
    assert path.read_bytes() == before
    assert list(tmp_path.glob(".snap.json.tmp-*")), "the half-done temporary is left behind"

    monkeypatch.undo()
    fresh = SnapshotManager(_repo(), str(path), interval_seconds=60)
    assert await fresh.load() == 2  # the old snapshot, intact
    assert not list(tmp_path.glob(".snap.json.tmp-*")), "stale temporaries are cleaned up"
    fresh.release()


async def test_a_full_disk_keeps_the_old_snapshot_and_reports_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, path, before = await _written_snapshot(tmp_path)

    async def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(aiofiles.os, "replace", disk_full)
    assert await manager.write() is False
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".snap.json.tmp-*"))
    manager.release()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            b'{"format": "resilient-api.snapshot", "version": 1, "collections": {"users": {"recor',
            "JSON",
        ),
        (b"[]", "not a"),
        (orjson.dumps({"format": FORMAT, "version": 99, "collections": {}}), "version 99"),
        (orjson.dumps({"format": FORMAT, "version": 1, "collections": {"users": {}}}), "malformed"),
    ],
)
async def test_an_unusable_snapshot_stops_start_up_naming_the_file(
    tmp_path: Path, content: bytes, needle: str
) -> None:
    path = tmp_path / "snap.json"
    path.write_bytes(content)
    manager = SnapshotManager(_repo(), str(path), interval_seconds=60)
    with pytest.raises(SnapshotError) as err:
        await manager.load()
    assert str(path) in str(err.value)
    assert needle in str(err.value)
    # And it is never overwritten: a manager that did not load refuses to write.
    with pytest.raises(SnapshotError):
        await manager.write()
    await manager.stop()
    assert path.read_bytes() == content


async def test_move_aside_keeps_the_bad_file_and_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_bytes(b"garbage")
    manager = SnapshotManager(_repo(), str(path), interval_seconds=60, on_corrupt="move-aside")
    assert await manager.load() == 0
    kept = list(tmp_path.glob("snap.json.corrupt-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == b"garbage"
    assert await manager.write()
    manager.release()


async def test_two_processes_cannot_share_a_snapshot_path(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    first = SnapshotManager(_repo(), str(path), interval_seconds=60)
    await first.load()
    second = SnapshotManager(_repo(), str(path), interval_seconds=60)
    with pytest.raises(SnapshotError, match="another process"):
        await second.load()
    first.release()
    await second.load()  # free once the first lets go
    second.release()


async def test_an_unwritable_directory_stops_start_up(tmp_path: Path) -> None:
    # /proc refuses new files even to root (chmod would not stop root).
    manager = SnapshotManager(_repo(), "/proc/snapshot.json", interval_seconds=60)
    with pytest.raises(SnapshotError, match="/proc"):
        await manager.load()
    missing = SnapshotManager(
        _repo(), str(tmp_path / "no" / "such" / "snap.json"), interval_seconds=60
    )
    with pytest.raises(SnapshotError, match="not usable"):
        await missing.load()
