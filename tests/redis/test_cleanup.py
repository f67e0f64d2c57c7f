"""Closing connections never hangs a shutdown: what redis-py will not finish in time is
abandoned (a cancellation it swallows included), and a real close still happens."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from app.redis.client import RedisClient, settle


async def _stubborn(finished: list[bool]) -> None:
    # Swallows cancellation the way redis-py can while it reconnects.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)
    finished.append(True)


async def test_settle_abandons_what_does_not_finish_in_time() -> None:
    finished: list[bool] = []
    assert await settle(_stubborn(finished), 0.1, "test") is False
    assert finished == []  # it gave up on the stubborn call rather than waiting it out


async def test_settle_waits_for_what_finishes_and_raises_its_error() -> None:
    assert await settle(asyncio.sleep(0.01), 1.0, "test") is True

    async def broken() -> None:
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        await settle(broken(), 1.0, "test")


async def test_a_client_closes_with_its_connections(redis_url: str) -> None:
    client = RedisClient(redis_url, timeout_seconds=1.0, max_connections=4)
    assert (await client.ping())["url"].startswith("redis://")
    started = time.monotonic()
    await client.close()
    assert time.monotonic() - started < 1.0
