"""Every replica's resilience report in Redis (`RedisFleet`); `MemoryFleet`
(app/memory/fleet.py) is its twin for one process.

Each report is a key of its own that expires after `REPORT_TTL_SECONDS` unless its replica
renews it (every second), and a set names the members: a replica that dies is gone from the view
within the TTL, with nothing to clean up but its name in the set, which the next read drops.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from app.redis.client import RedisClient
from app.stores.fleet import MAX_MEMBERS, REPORT_TTL_SECONDS


class RedisFleet:
    """The fleet's reports, shared by every replica on this Redis."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._members = f"{client.prefix}fleet:members"
        self._report = f"{client.prefix}fleet:report:"

    async def report(self, member: str, state: dict[str, Any]) -> None:
        """SET the report with its TTL and name the member, in one round trip."""
        encoded = orjson.dumps(state)

        async def write(redis: Redis) -> Any:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.set(self._report + member, encoded, ex=REPORT_TTL_SECONDS)
                pipe.sadd(self._members, member)
                return await pipe.execute()

        await self._client.call("fleet.report", write)

    async def members(self) -> list[dict[str, Any]]:
        """The reports alive now; names whose report expired are dropped from the set."""
        names: Any = await self._client.call(
            "fleet.members", lambda r: r.smembers(self._members), idempotent=True
        )
        ordered = sorted(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        ordered = ordered[: MAX_MEMBERS * 2]  # expired names are dropped below
        if not ordered:
            return []
        keys = [self._report + name for name in ordered]
        reports: Any = await self._client.call(
            "fleet.reports", lambda r: r.mget(keys), idempotent=True
        )
        gone = [name for name, report in zip(ordered, reports, strict=True) if report is None]
        if gone:
            await self._client.call("fleet.forget", lambda r: r.srem(self._members, *gone))
        return [orjson.loads(report) for report in reports if report is not None][:MAX_MEMBERS]
