"""The head deadline (`app/http_protocol.py`) on a real uvicorn server in this process: slow
heads are cut off, and a head that arrives whole leaves no timer behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.responses import PlainTextResponse

from app.http_protocol import HeadTimeoutProtocol, head_timeout_protocol

DEADLINE = 0.3


@pytest.fixture
async def server() -> AsyncIterator[uvicorn.Server]:
    config = uvicorn.Config(
        PlainTextResponse("ok"),
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_config=None,
        http=head_timeout_protocol(DEADLINE),
        timeout_keep_alive=5,
    )
    config.load()
    running = uvicorn.Server(config)
    running.lifespan = config.lifespan_class(config)
    await running.startup()
    try:
        yield running
    finally:
        await running.shutdown()


async def _connect(
    server: uvicorn.Server,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = server.servers[0].sockets[0].getsockname()[1]
    return await asyncio.open_connection("127.0.0.1", port)


def _protocols(server: uvicorn.Server) -> list[HeadTimeoutProtocol]:
    return [c for c in server.server_state.connections if isinstance(c, HeadTimeoutProtocol)]


async def test_a_whole_head_is_answered_and_leaves_no_deadline_armed(
    server: uvicorn.Server,
) -> None:
    reader, writer = await _connect(server)
    for _ in range(2):  # the second request on the same kept-alive connection as well
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 200")
        await reader.readexactly(2)  # "ok"
        [protocol] = _protocols(server)
        assert protocol._head_deadline is None
    await asyncio.sleep(DEADLINE * 2)
    assert not reader.at_eof()  # idle between requests is keep-alive's business, not ours
    writer.close()


@pytest.mark.parametrize("first", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"])
async def test_a_client_that_never_finishes_its_head_is_cut_off_at_the_deadline(
    server: uvicorn.Server, first: bytes
) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await _connect(server)
    start = loop.time()
    writer.write(first)

    async def trickle() -> None:  # a header line every 100 ms, never the blank line
        for i in range(30):
            await asyncio.sleep(0.1)
            if writer.is_closing():
                return
            try:
                writer.write(f"X-Slow-{i}: 1\r\n".encode())
                await writer.drain()
            except ConnectionError:
                return

    trickler = asyncio.create_task(trickle()) if first else None
    try:
        answered = await asyncio.wait_for(reader.read(), 2)
    except ConnectionResetError:
        # Closed with a trickled line still unread: the kernel resets instead of closing, as
        # it did once beside another make test. Cut off and nothing answered, all the same.
        answered = b""
    assert answered == b""  # closed, and nothing answered
    # Not at once, and not much later; the server may have armed the deadline just before
    # `start` (at its end of the connection), so the lower bound has slack.
    assert DEADLINE * 0.5 <= loop.time() - start < DEADLINE + 1
    if trickler is not None:
        trickler.cancel()
    writer.close()
