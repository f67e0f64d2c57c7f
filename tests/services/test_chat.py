"""The chat manager with fake connections."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from app.core.exceptions import NameTaken
from app.services.chat import ChatManager
from tests.fakes import FakeClock


class FakeConnection:
    def __init__(self, *, hang: bool = False, broken: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed_with: tuple[int, str | None] | None = None
        self.hang = hang
        self.broken = broken

    async def send_text(self, data: str) -> None:
        if self.broken:
            raise ConnectionError("gone")
        if self.hang:
            await asyncio.sleep(3600)
        self.sent.append(json.loads(data))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed_with = (code, reason)


@pytest.fixture
def chat() -> ChatManager:
    return ChatManager(messages_per_second=5, send_timeout_seconds=0.1)


async def test_join_notice_goes_to_the_others(chat: ChatManager) -> None:
    ann, bob = FakeConnection(), FakeConnection()
    await chat.join("r", "ann", ann)
    await chat.join("r", "bob", bob)
    assert ann.sent == [{"type": "system", "event": "join", "name": "bob", "room": "r"}]
    assert bob.sent == []


async def test_names_are_unique_per_room(chat: ChatManager) -> None:
    await chat.join("r", "ann", FakeConnection())
    with pytest.raises(NameTaken):
        await chat.join("r", "ann", FakeConnection())
    await chat.join("other", "ann", FakeConnection())
    assert chat.rooms() == {"r": 1, "other": 1}


async def test_broadcast_reaches_the_room_only(chat: ChatManager) -> None:
    ann, bob, carl = FakeConnection(), FakeConnection(), FakeConnection()
    a = await chat.join("r", "ann", ann)
    await chat.join("r", "bob", bob)
    await chat.join("elsewhere", "carl", carl)
    await chat.broadcast(a.room, {"type": "message", "text": "hi"})
    assert ann.sent[-1] == {"type": "message", "text": "hi"}
    assert bob.sent[-1] == {"type": "message", "text": "hi"}
    assert carl.sent == []


async def test_a_slow_or_dead_member_is_dropped_without_holding_up_the_room(
    chat: ChatManager,
) -> None:
    ann, slow, dead = FakeConnection(), FakeConnection(hang=True), FakeConnection(broken=True)
    a = await chat.join("r", "ann", ann)
    chat._rooms["r"]["slow"] = type(a)("r", "slow", slow, tokens=5, refilled_at=0)  # joined quietly
    chat._rooms["r"]["dead"] = type(a)("r", "dead", dead, tokens=5, refilled_at=0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    delivered = await chat.broadcast("r", {"type": "message", "text": "hi"})
    assert loop.time() - start < 1
    assert delivered == 1
    assert chat.rooms() == {"r": 1}
    assert slow.closed_with is not None
    assert slow.closed_with[0] == 1008


async def test_leave_tells_the_others_and_is_idempotent(chat: ChatManager) -> None:
    ann, bob = FakeConnection(), FakeConnection()
    await chat.join("r", "ann", ann)
    b = await chat.join("r", "bob", bob)
    await chat.leave(b)
    await chat.leave(b)
    assert ann.sent[-1] == {"type": "system", "event": "leave", "name": "bob", "room": "r"}
    assert chat.connection_count == 1


async def test_direct_reaches_only_the_named_member(chat: ChatManager) -> None:
    ann, bob, carl = FakeConnection(), FakeConnection(), FakeConnection()
    a = await chat.join("r", "ann", ann)
    await chat.join("r", "bob", bob)
    await chat.join("r", "carl", carl)
    carl.sent.clear()
    assert await chat.direct(a, "bob", "psst")
    assert bob.sent[-1]["type"] == "direct"
    assert bob.sent[-1]["text"] == "psst"
    assert carl.sent == []
    assert not await chat.direct(a, "nobody", "hello?")


async def test_message_rate_is_a_token_bucket() -> None:
    clock = FakeClock()
    chat = ChatManager(messages_per_second=5, clock=clock)
    member = await chat.join("r", "ann", FakeConnection())
    assert [chat.allow(member) for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.2
    assert chat.allow(member)
    assert not chat.allow(member)


async def test_close_all_sends_1001_and_empties_every_room(chat: ChatManager) -> None:
    connections = [FakeConnection() for _ in range(3)]
    for i, connection in enumerate(connections):
        await chat.join(f"r{i % 2}", f"n{i}", connection)
    await chat.close_all()
    assert all(c.closed_with == (1001, "server shutting down") for c in connections)
    assert chat.connection_count == 0


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ("not json", "Frames must be JSON objects."),
        ("[1, 2]", "Frames must be JSON objects."),
        ('{"text": "hi"}', "Missing type. Use message, direct or ping."),
        ('{"type": 5}', "Unknown type '5'. Use message, direct or ping."),
        ('{"type": "message", "text": ""}', "text must be a non-empty string."),
        ('{"type": "direct", "to": "bob", "text": 7}', "text must be a non-empty string."),
        ('{"type": "direct", "text": "hi"}', "No member named 'None' in this room."),
        ('{"type": "direct", "to": 3, "text": "hi"}', "No member named '3' in this room."),
        (
            '{"type": "direct", "to": "nobody", "text": "hi"}',
            "No member named 'nobody' in this room.",
        ),
    ],
)
async def test_each_unusable_frame_is_told_what_is_wrong(
    chat: ChatManager, frame: str, detail: str
) -> None:
    ann = FakeConnection()
    member = await chat.join("r", "ann", ann)
    await chat.handle(member, frame)
    assert ann.sent == [{"type": "error", "detail": detail}]
    assert not member.closed


async def test_frames_are_handled_by_type(chat: ChatManager) -> None:
    ann, bob = FakeConnection(), FakeConnection()
    sender = await chat.join("r", "ann", ann)
    await chat.join("r", "bob", bob)
    ann.sent.clear()
    await chat.handle(sender, '{"type": "ping", "extra": "ignored"}')
    assert [f["type"] for f in ann.sent] == ["pong"]
    await chat.handle(sender, '{"type": "direct", "to": "bob", "text": "psst"}')
    assert bob.sent[-1]["type"] == "direct"
    assert bob.sent[-1]["text"] == "psst"
    await chat.handle(sender, '{"type": "message", "text": "hello"}')
    assert ann.sent[-1]["text"] == bob.sent[-1]["text"] == "hello"
