"""After Redis restarts, every pooled connection is dead: the first call on each is retried
once on a fresh connection, so that no caller sees the restart once Redis answers again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from app.redis.client import RedisClient
from tests.redis_server import RedisServer


def setter(key: str, value: int) -> Callable[[Redis], Awaitable[object]]:
    """A SET of `key` to `value`, as a command for `RedisClient.call`."""

    async def command(redis: Redis) -> object:
        return await redis.set(key, value)

    return command


async def test_calls_after_a_restart_reconnect_instead_of_failing(
    module_redis: RedisServer,
) -> None:
    client = RedisClient(module_redis.url, timeout_seconds=2.0, max_connections=8)
    try:
        # Eight connections in the pool, each used once.
        await asyncio.gather(*(client.call("set", setter(f"k{i}", i)) for i in range(8)))
        module_redis.kill()
        module_redis.start()
        # Eight at once take the eight stale connections: each one's first try meets a
        # closed socket. Writes included: what they carried never reached any server.
        results = await asyncio.gather(
            *(client.call("set", setter(f"k{i}", -i)) for i in range(8)),
            client.ping(),
        )
        assert results[:8] == [True] * 8
        assert await client.call("get", lambda r: r.get("k3"), idempotent=True) == b"-3"
    finally:
        await client.close()
