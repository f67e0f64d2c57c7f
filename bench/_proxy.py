"""A TCP proxy between the app and Redis that can hold back Redis's answer to one command:
Redis has applied it, the app times out waiting. What a Redis pause or a partition at the wrong
moment does, made deterministic (a ghost write). Used by `bench.chaos` and the ghost-write test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class AnswerHoldingProxy:
    """Forwards TCP between the app and Redis; once the first request carrying `trigger` (every
    part) passes, the answers on that connection are held `hold_seconds` before they go on.
    `arm` sets a new trigger for one more time."""

    def __init__(
        self, upstream_port: int, trigger: tuple[bytes, ...], *, hold_seconds: float = 1.5
    ) -> None:
        self.port = _free_port()
        self.upstream_port = upstream_port
        self.trigger = trigger
        self.hold_seconds = hold_seconds
        self.triggered = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def arm(self, trigger: tuple[bytes, ...]) -> None:
        """Hold the answers after the next request carrying `trigger` (once)."""
        self.trigger = trigger
        self.triggered = 0

    def __enter__(self) -> AnswerHoldingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _connection(
        self, app_in: asyncio.StreamReader, app_out: asyncio.StreamWriter
    ) -> None:
        redis_in, redis_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        hold = asyncio.Event()

        async def requests() -> None:
            while chunk := await app_in.read(65536):
                # One command per chunk here (small commands, one write each).
                if (
                    not self.triggered
                    and not hold.is_set()
                    and all(part in chunk for part in self.trigger)
                ):
                    self.triggered += 1
                    hold.set()
                redis_out.write(chunk)
                await redis_out.drain()

        async def answers() -> None:
            while chunk := await redis_in.read(65536):
                if hold.is_set():
                    await asyncio.sleep(self.hold_seconds)
                app_out.write(chunk)
                await app_out.drain()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(answers())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (app_out, redis_out):
            writer.close()
