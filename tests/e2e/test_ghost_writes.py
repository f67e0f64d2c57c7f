"""A write Redis applied but whose answer never reached the app (a "ghost write"), through a real
server and a real Redis: the client hears 503, retries with the same `Idempotency-Key`, as the
docs advise, and gets the original 201 with the id it created, never 409 "email taken".

A small TCP proxy sits between the app and Redis and holds back Redis's answer to the one
command that commits the new account (the commit script carrying the test's email), for longer
than the app's Redis timeout: Redis has applied it, the app has given up on it. That is what a
Redis pause or a network partition at the wrong moment does, made deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.e2e.helpers import USERS, admin_headers
from tests.live_server import free_port
from tests.redis_server import RedisServer

GHOST_EMAIL = b"ghost-e2e@example.com"
HOLD_SECONDS = 1.5


class AnswerHoldingProxy:
    """Forwards TCP between the app and Redis; once the first request carrying `trigger` (every
    part) passes, the answers on that connection are held `HOLD_SECONDS` before they go on."""

    def __init__(self, upstream_port: int, trigger: tuple[bytes, ...]) -> None:
        self.port = free_port()
        self.upstream_port = upstream_port
        self.trigger = trigger
        self.triggered = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

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
                    await asyncio.sleep(HOLD_SECONDS)
                app_out.write(chunk)
                await app_out.drain()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(answers())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (app_out, redis_out):
            writer.close()


@pytest.fixture(scope="module")
def proxy(module_redis: RedisServer) -> Iterator[AnswerHoldingProxy]:
    # The commit script's call carries the new record, email included; lookups do not run a
    # script, so only the commit's answer is held.
    with AnswerHoldingProxy(module_redis.port, (b"EVALSHA", GHOST_EMAIL)) as running:
        yield running


def test_a_retry_of_a_write_redis_applied_but_never_answered_replays_the_201(
    proxy: AnswerHoldingProxy, module_redis: RedisServer, server_factory: ServerFactory
) -> None:
    server = server_factory(
        {
            "APP_STORE": "redis",
            "APP_REDIS_URL": module_redis.url.replace(f":{module_redis.port}", f":{proxy.port}", 1),
            "APP_REDIS_TIMEOUT_SECONDS": "0.3",
        }
    )
    body = {"email": GHOST_EMAIL.decode(), "name": "Ghost", "password": "password123"}
    headers = {"Idempotency-Key": "ghost-e2e-1"}
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        # One account first: Redis then knows the commit script, so the held EVALSHA is applied
        # (the very first one would answer NOSCRIPT and change nothing).
        warm = {"email": "warm-e2e@example.com", "name": "Warm", "password": "password123"}
        assert http.post(USERS, json=warm).status_code == 201
        first = http.post(USERS, json=body, headers=headers)
        assert first.status_code == 503, first.text
        assert proxy.triggered == 1, "the commit's answer was held, not an earlier call's"

        retry = http.post(USERS, json=body, headers=headers)
        assert retry.status_code == 201, (retry.text, proxy.triggered)
        assert retry.headers["idempotent-replayed"] == "true"
        created = retry.json()
        assert retry.headers["location"] == f"{USERS}/{created['id']}"

        # Exactly one account, the one the first attempt wrote.
        found = http.get(
            USERS, params={"email": GHOST_EMAIL.decode()}, headers=admin_headers(http)
        ).json()
        assert found["total"] == 1
        assert found["items"][0]["id"] == created["id"]
        # Without the key, the email is simply taken.
        assert http.post(USERS, json=body).status_code == 409
    assert "idempotent_write_found" in server.log_text()
