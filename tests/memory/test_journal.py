"""The memory store's journal, in process: what a crash keeps, how ids continue, compaction,
torn and corrupt files, fsync policies and a disk that fails.

A "crash" here is a manager that is never stopped: its lock is released (as the kernel does
for a killed process) and a second manager loads the same files. The real SIGKILL is in
`tests/e2e/test_journal.py`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.memory.journal import ID_BLOCK, JournalUnavailable, generation_path, generations
from app.memory.repository import MemoryRepository
from app.memory.snapshots import SnapshotError, SnapshotManager
from app.stores.records import CollectionSpec, UniqueField

SPEC = CollectionSpec("users", unique=(UniqueField("email", case_insensitive=True),))
NOTES = CollectionSpec("notes")


def _repo() -> MemoryRepository:
    repository = MemoryRepository()
    repository.declare(SPEC)
    repository.declare(NOTES)
    return repository


async def _opened(path: Path, **options: Any) -> SnapshotManager:
    manager = SnapshotManager(
        _repo(), str(path), interval_seconds=60, journal_fsync="everysec", **options
    )
    await manager.load()
    return manager


async def _crash(manager: SnapshotManager) -> None:
    """What a SIGKILL leaves: what reached the file stays, the lock goes, nothing is closed."""
    assert manager.journal is not None
    await manager.journal.flush()
    manager.release()


async def test_writes_after_the_last_snapshot_survive_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    first = await _opened(path)
    repo = first.repository
    for i in range(5):
        await repo.create("users", {"email": f"u{i}@x.io", "name": f"U{i}"})
    await repo.update("users", 2, {"name": "Renamed"})
    await repo.replace("users", 3, {"email": "three@x.io", "name": "Three"})
    await repo.delete("users", 4)
    before = await repo.list("users")
    await _crash(first)
    assert not path.exists(), "no snapshot was written: only the journal holds these writes"

    second = await _opened(path)
    assert await second.repository.list("users") == before
    assert (await second.repository.get("users", 2) or {})["version"] == 2
    # The unique index was rebuilt from the journal: the replaced email is taken, the old free.
    with pytest.raises(Exception, match="unique"):
        await second.repository.create("users", {"email": "THREE@x.io"})
    await second.stop()


async def test_after_a_crash_ids_continue_past_every_id_that_may_have_been_handed_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "snap.json"
    first = await _opened(path)
    for i in range(3):
        await first.repository.create("users", {"email": f"u{i}@x.io"})
    await _crash(first)

    second = await _opened(path)
    created = await second.repository.create("users", {"email": "after@x.io"})
    assert created["id"] == ID_BLOCK + 1  # the whole reserved block is skipped, never reused
    await second.stop()

    # A clean stop gives unused reserved ids back: the next start continues one by one.
    third = await _opened(path)
    assert (await third.repository.create("users", {"email": "next@x.io"}))["id"] == ID_BLOCK + 2
    await third.stop()


async def test_a_rolled_back_transaction_leaves_nothing_in_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    first = await _opened(path)
    repo = first.repository
    await repo.create("users", {"email": "kept@x.io"})
    with pytest.raises(RuntimeError):
        async with repo.transaction("users", "notes") as tx:
            await tx.create("notes", {"text": "gone"})
            await tx.update("users", 1, {"email": "changed@x.io"})
            raise RuntimeError("abort")
    async with repo.transaction("users", "notes") as tx:
        await tx.create("notes", {"text": "kept"})
        await tx.update("users", 1, {"name": "Both"})
    await _crash(first)

    second = await _opened(path)
    users = (await second.repository.list("users")).items
    notes = (await second.repository.list("notes")).items
    assert [(u["email"], u.get("name"), u["version"]) for u in users] == [("kept@x.io", "Both", 2)]
    assert [n["text"] for n in notes] == ["kept"]
    await second.stop()


async def test_a_snapshot_compacts_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    manager = await _opened(path)
    for i in range(10):
        await manager.repository.create("users", {"email": f"u{i}@x.io"})
    old = generations(path)
    assert await manager.write()
    assert all(g > max(old) for g in generations(path)), "covered generations are deleted"
    await manager.repository.create("users", {"email": "after@x.io"})
    await _crash(manager)

    restarted = await _opened(path)
    assert (await restarted.repository.count("users")) == 11
    assert len(generations(path)) == 1, "a start-up that replayed anything compacts at once"
    await restarted.stop()


async def test_a_torn_last_line_is_skipped_and_start_up_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    first = await _opened(path)
    await first.repository.create("users", {"email": "whole@x.io"})
    await _crash(first)
    journal_file = generation_path(path, generations(path)[-1])
    with journal_file.open("ab") as file:
        file.write(b'{"c": [["users", 2, {"id": 2, "ver')  # a write cut short by the crash

    second = await _opened(path)
    assert [u["email"] for u in (await second.repository.list("users")).items] == ["whole@x.io"]
    await second.stop()


async def test_a_corrupt_line_stops_start_up_naming_the_file_unless_moved_aside(
    tmp_path: Path,
) -> None:
    path = tmp_path / "snap.json"
    first = await _opened(path)
    await first.repository.create("users", {"email": "a@x.io"})
    await _crash(first)
    journal_file = generation_path(path, generations(path)[-1])
    lines = journal_file.read_bytes().split(b"\n")
    lines.insert(1, b"not json")
    journal_file.write_bytes(b"\n".join(lines))

    refused = SnapshotManager(_repo(), str(path), interval_seconds=60, journal_fsync="everysec")
    with pytest.raises(SnapshotError) as err:
        await refused.load()
    assert str(journal_file) in str(err.value)
    assert "line 2" in str(err.value)
    refused.release()
    assert journal_file.exists(), "the file start-up refused is left as it was"

    aside = await _opened(path, on_corrupt="move-aside")
    assert await aside.repository.count("users") == 0
    assert list(tmp_path.glob(f"{journal_file.name}.corrupt-*"))
    await aside.stop()


async def test_fsync_policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    for policy, expected in (("always", True), ("everysec", False), ("no", False)):
        path = tmp_path / policy / "snap.json"
        path.parent.mkdir()
        manager = SnapshotManager(_repo(), str(path), interval_seconds=60, journal_fsync=policy)  # type: ignore[arg-type]
        await manager.load()
        await manager.repository.create("users", {"email": "first@x.io"})  # reserves: fsynced
        synced.clear()
        await manager.repository.update("users", 1, {"name": "N"})
        assert bool(synced) is expected, policy
        await manager.stop()


async def test_a_failed_journal_write_refuses_writes_and_fails_readiness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = await _opened(tmp_path / "snap.json")
    repo = manager.repository
    await repo.create("users", {"email": "before@x.io"})
    real_write = os.write

    def disk_full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(JournalUnavailable):
        await repo.update("users", 1, {"name": "maybe"})
    monkeypatch.setattr(os, "write", real_write)
    with pytest.raises(JournalUnavailable):
        await repo.create("users", {"email": "after@x.io"})  # refused before it changes anything
    assert await repo.count("users") == 1
    with pytest.raises(OSError, match="No space left"):
        manager.journal_status()
    manager.release()


async def test_journal_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    manager = await _opened(path)
    await manager.repository.create("users", {"email": "a@x.io", "password_hash": "x"})
    journal_file = generation_path(path, generations(path)[-1])
    assert journal_file.stat().st_mode & 0o777 == 0o600
    header = orjson.loads(journal_file.read_bytes().split(b"\n")[0])
    assert header["fsync"] == "everysec"
    await manager.stop()
