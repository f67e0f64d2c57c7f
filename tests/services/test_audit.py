"""The audit log writes every bus event as a JSON line, in batches, and flushes on stop."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from app.memory.event_log import MemoryEventLog
from app.services.audit import AuditLog
from app.services.events import EventBus
from app.stores.events import parse_event_id


async def test_events_become_json_lines_and_stop_flushes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    bus = EventBus(MemoryEventLog())
    await bus.start()
    audit = AuditLog(bus, str(path), flush_seconds=60)  # only stop() will flush
    await audit.start()
    for i in range(5):
        await bus.publish("user.created", {"id": i})
    await audit.stop()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["data"]["id"] for line in lines] == [0, 1, 2, 3, 4]
    positions = [_position(line["id"]) for line in lines]
    assert positions == sorted(positions)
    assert len(set(positions)) == 5
    assert all(line["topic"] == "user.created" and line["ts"] for line in lines)


async def test_a_full_batch_is_written_without_waiting_for_the_timer(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    bus = EventBus(MemoryEventLog(), queue_size=1000)
    await bus.start()
    audit = AuditLog(bus, str(path), flush_seconds=60, batch_size=10)
    await audit.start()
    for i in range(10):
        await bus.publish("t", i)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if path.exists() and len(path.read_text().splitlines()) == 10:
            break
    assert len(path.read_text().splitlines()) == 10
    await audit.stop()


async def test_an_unwritable_path_keeps_events_and_never_blocks_publishing(tmp_path: Path) -> None:
    bus = EventBus(MemoryEventLog())
    await bus.start()
    audit = AuditLog(bus, str(tmp_path / "missing-dir" / "audit.jsonl"), flush_seconds=0.01)
    await audit.start()
    for i in range(3):
        await bus.publish("t", i)
    await asyncio.sleep(0.1)
    assert audit.written == 0
    await audit.stop()  # logs the failure, does not raise
    assert len(audit._buffer) == 3


def _position(event_id: str) -> tuple[int, int]:
    position = parse_event_id(event_id)
    assert position is not None, event_id
    return position
