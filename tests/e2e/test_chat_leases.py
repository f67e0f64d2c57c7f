"""Chat names held by leases, through real app processes on a real redis-server: a member whose
replica is killed (SIGKILL) rejoins on another replica at once and the others hear the old
member leave; a member who left while Redis was paused rejoins within moments and is never
refused with 1008 (the close code clients treat as final).

On acf3955 both rejoins were closed 1008 "name taken" for 24-26 s, and nobody heard `leave`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerFactory
from tests.live_server import LiveServer
from tests.redis_server import RedisServer


def _env(module_redis: RedisServer) -> dict[str, str]:
    return {
        "APP_STORE": "redis",
        "APP_REDIS_URL": module_redis.url,
        "APP_REDIS_TIMEOUT_SECONDS": "0.5",
        "APP_PROCESS_POOL_WORKERS": "1",
    }


def _ws(server: LiveServer, room: str, name: str) -> str:
    return f"ws{server.base_url.removeprefix('http')}/api/v1/ws/chat?room={room}&name={name}"


async def _frame(ws: ClientConnection, event: str, name: str) -> dict[str, Any]:
    """The next system frame announcing `event` for `name` (others may come first)."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame.get("event") == event and frame.get("name") == name:
            return frame


async def _joined(ws: ClientConnection) -> ClientConnection:
    """`ws` once its join is done: the server answers a ping only after it (a socket is open
    before the join has claimed the name and registered the member)."""
    await ws.send(json.dumps({"type": "ping"}))
    while json.loads(await asyncio.wait_for(ws.recv(), 10)).get("type") != "pong":
        pass
    return ws


async def _join(server: LiveServer, room: str, name: str) -> tuple[ClientConnection | None, int]:
    """A joined socket, or None with the close code the join got."""
    ws = await connect(_ws(server, room, name))
    try:
        await asyncio.wait_for(ws.recv(), 0.5)
    except TimeoutError:
        return ws, 0  # joined: nothing to say yet
    except ConnectionClosed as closed:
        return None, closed.rcvd.code if closed.rcvd is not None else 1006
    return ws, 0  # a frame came: joined (a notice about someone else)


@pytest.fixture
def pair(module_redis: RedisServer, server_factory: ServerFactory) -> tuple[LiveServer, LiveServer]:
    servers = server_factory(_env(module_redis)), server_factory(_env(module_redis))
    for server in servers:
        # Ready means subscribed to the other replicas (a server answers /live a moment
        # before): a frame published before that would never reach it.
        for _ in range(200):
            if httpx.get(server.base_url + "/ready", timeout=5).status_code == 200:
                break
            time.sleep(0.05)
    return servers


async def test_a_member_whose_replica_was_killed_rejoins_on_another_at_once(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    doomed, survivor = pair
    ann = await _joined(await connect(_ws(doomed, "leases", "ann")))
    bob = await _joined(await connect(_ws(survivor, "leases", "bob")))
    await _frame(ann, "join", "bob")
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(10)

    # Ann's client reconnects to the other replica with the same name, straight away.
    again, code = await _join(survivor, "leases", "ann")
    assert again is not None, f"rejoin refused with {code}"
    # Bob hears ann leave (the old connection) and join (the new one), in that order.
    assert (await _frame(bob, "leave", "ann"))["room"] == "leases"
    await _frame(bob, "join", "ann")
    await again.send(json.dumps({"type": "message", "text": "back"}))
    while (frame := json.loads(await asyncio.wait_for(bob.recv(), 10))).get("type") != "message":
        pass
    assert (frame["from"], frame["text"]) == ("ann", "back")
    for ws in (again, bob, ann):
        await ws.close()


async def test_the_others_hear_a_member_of_a_killed_replica_leave_when_its_lease_ends(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    doomed, survivor = pair
    eve = await _joined(await connect(_ws(doomed, "expiry", "eve")))
    fay = await _joined(await connect(_ws(survivor, "expiry", "fay")))
    await _frame(eve, "join", "fay")
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait(10)
    # Nobody rejoins as eve: her lease runs out (5 s) and the survivor announces it.
    assert (await _frame(fay, "leave", "eve"))["room"] == "expiry"
    await fay.close()


async def test_a_member_who_left_during_a_redis_pause_rejoins_and_never_hears_1008(
    pair: tuple[LiveServer, LiveServer], module_redis: RedisServer
) -> None:
    a, b = pair
    assert module_redis.process is not None
    cleo = await _joined(await connect(_ws(a, "pause", "cleo")))
    dan = await _joined(await connect(_ws(b, "pause", "dan")))
    await _frame(cleo, "join", "dan")
    module_redis.process.send_signal(signal.SIGSTOP)
    try:
        # Cleo's connection drops while Redis is paused: A cannot give her name back yet.
        await cleo.close()
        assert "chat_name_not_released" in await _logged(a, "chat_name_not_released")
    finally:
        module_redis.process.send_signal(signal.SIGCONT)
    # Her client reconnects, to the other replica, and retries on 1013 as clients do: it never
    # hears 1008, and gets in within moments (A gives the name back once Redis answers).
    codes = []
    for _ in range(40):
        ws, code = await _join(b, "pause", "cleo")
        if ws is not None:
            break
        codes.append(code)
        await asyncio.sleep(0.25)
    assert ws is not None, codes
    assert 1008 not in codes
    assert len(codes) <= 20, codes  # in at most about 5 s of retries
    await _frame(dan, "join", "cleo")
    # And a name held by a connected member is still refused as final.
    twin, code = await _join(a, "pause", "dan")
    assert (twin, code) == (None, 1008)
    for socket in (ws, dan):
        await socket.close()


async def _logged(server: LiveServer, event: str) -> str:
    for _ in range(100):
        text = server.log_text()
        if event in text:
            return text
        await asyncio.sleep(0.05)
    return server.log_text()
