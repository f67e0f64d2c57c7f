"""Chat rooms spanning two replicas (two managers, each with its own Redis client and
subscription, on one real redis-server): names, caps, broadcast, direct messages, leaving,
and what members see when their replica loses Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from app.core.exceptions import NameTaken, RoomFull
from app.redis.backplane import Backplane
from app.redis.chat import RedisRooms
from app.redis.client import RedisClient
from app.services.chat import TRY_AGAIN_LATER, ChatManager
from tests.redis_server import RedisServer
from tests.services.test_chat import FakeConnection


class Replica:
    """One process's chat: a manager over shared rooms, with its own connections to Redis."""

    def __init__(self, url: str, *, max_room_members: int = 10) -> None:
        self.client = RedisClient(url, timeout_seconds=1.0, max_connections=8)
        self.backplane = Backplane(self.client, retry_seconds=0.2)
        rooms = RedisRooms(self.client, self.backplane, max_room_members=max_room_members)
        self.chat = ChatManager(
            messages_per_second=50, max_room_members=max_room_members, shared=rooms
        )

    async def start(self) -> None:
        self.chat.start()
        await self.backplane.start()

    async def close(self) -> None:
        await self.chat.close()
        await self.backplane.close()
        await self.client.close()


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[Replica, Replica]]:
    pair = (Replica(redis_url, max_room_members=3), Replica(redis_url, max_room_members=3))
    for replica in pair:
        await replica.start()
    yield pair
    for replica in pair:
        await replica.close()


async def _until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_a_message_from_a_member_on_a_reaches_a_member_on_b(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    ann, bob = FakeConnection(), FakeConnection()
    sender = await a.chat.join("r", "ann", ann)
    await b.chat.join("r", "bob", bob)
    await _until(lambda: any(f.get("event") == "join" for f in ann.sent))
    await a.chat.broadcast("r", {"type": "message", "from": "ann", "text": "hi"})
    await _until(lambda: {"type": "message", "from": "ann", "text": "hi"} in bob.sent)
    await _until(lambda: {"type": "message", "from": "ann", "text": "hi"} in ann.sent)  # own
    assert await a.chat.direct(sender, "bob", "psst")
    await _until(lambda: any(f.get("type") == "direct" for f in bob.sent))
    assert not any(f.get("type") == "direct" for f in ann.sent)
    assert not await a.chat.direct(sender, "nobody", "hello?")


async def test_names_and_the_room_cap_hold_across_replicas(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    await a.chat.join("r", "ann", FakeConnection())
    with pytest.raises(NameTaken):
        await b.chat.join("r", "ann", FakeConnection())
    await b.chat.join("r", "bob", FakeConnection())
    await a.chat.join("r", "cy", FakeConnection())
    with pytest.raises(RoomFull):
        await b.chat.join("r", "dee", FakeConnection())


async def test_a_name_is_free_again_once_its_member_leaves(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    watcher = FakeConnection()
    await b.chat.join("r", "watcher", watcher)
    ann = await a.chat.join("r", "ann", FakeConnection())
    await a.chat.leave(ann)
    await _until(lambda: any(f.get("event") == "leave" for f in watcher.sent))
    await b.chat.join("r", "ann", FakeConnection())  # the same name, on the other replica


async def test_members_are_told_to_try_again_when_their_replica_loses_redis(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    replica = Replica(server.url)
    await replica.start()
    try:
        connection = FakeConnection()
        await replica.chat.join("r", "ann", connection)
        server.kill()
        await _until(lambda: connection.closed_with is not None, seconds=5)
        assert connection.closed_with is not None
        assert connection.closed_with[0] == TRY_AGAIN_LATER
        assert replica.chat.rooms() == {}
    finally:
        await replica.close()
        server.stop()
