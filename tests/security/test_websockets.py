"""WebSocket chat: only allowed origins, a bounded number of sockets per client and per room."""

from __future__ import annotations

from contextlib import AsyncExitStack
from urllib.parse import urlencode

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from tests.live_server import LiveServer
from tests.security.defaults import SHIPPED_BOUNDS

SERVER_ENV = {
    **SHIPPED_BOUNDS,
    "APP_CORS_ORIGINS": "https://app.example.com",
    "APP_CHAT_MAX_ROOM_MEMBERS": "3",
}


def _url(server: LiveServer, room: str, name: str) -> str:
    query = urlencode({"room": room, "name": name})
    return server.base_url.replace("http", "ws") + f"/api/v1/ws/chat?{query}"


async def test_a_page_of_another_site_cannot_open_a_socket(live_server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(_url(live_server, "r", "m"), origin=Origin("https://evil.example"))
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    "origin", ["https://app.example.com", "same", None], ids=["cors", "same", "none"]
)
async def test_allowed_origins_and_non_browsers_connect(
    live_server: LiveServer, origin: str | None, request: pytest.FixtureRequest
) -> None:
    room = f"ok-{request.node.callspec.id}"
    if origin == "same":
        origin = live_server.base_url
    allowed = Origin(origin) if origin is not None else None
    async with connect(_url(live_server, room, "m"), origin=allowed) as ws:
        await ws.send('{"type": "ping"}')
        assert "pong" in await ws.recv()


async def test_one_client_holds_at_most_eight_sockets(live_server: LiveServer) -> None:
    async with AsyncExitStack() as stack:
        for i in range(8):
            await stack.enter_async_context(connect(_url(live_server, f"cap{i}", "m")))
        ninth = await connect(_url(live_server, "cap-9", "m"))
        with pytest.raises(ConnectionClosed) as closed:
            await ninth.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
    # Every place is given back when the sockets close.
    async with connect(_url(live_server, "cap-again", "m")) as ws:
        await ws.send('{"type": "ping"}')
        assert "pong" in await ws.recv()


async def test_a_room_holds_a_bounded_number_of_members(live_server: LiveServer) -> None:
    async with AsyncExitStack() as stack:
        for name in ("a", "b", "c"):
            await stack.enter_async_context(connect(_url(live_server, "small", name)))
        fourth = await connect(_url(live_server, "small", "d"))
        with pytest.raises(ConnectionClosed) as closed:
            await fourth.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
