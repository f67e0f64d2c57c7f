"""The fleet's interface (`Fleet`): where each replica reports its resilience state every second,
so one console can show every replica's breakers and faults (the Hystrix dashboard's Turbine).
`MemoryFleet` (app/memory/fleet.py) knows this process alone; `RedisFleet` (app/redis/fleet.py)
every replica sharing the Redis, each report expiring unless renewed, so a replica that dies
disappears by itself."""

from __future__ import annotations

from typing import Any, Protocol

# A report lives this long unless renewed (replicas renew every second).
REPORT_TTL_SECONDS = 3
# At most this many replicas are listed: the view stays bounded whatever joins.
MAX_MEMBERS = 64


class Fleet(Protocol):
    """Reports of the replicas alive now, one per process."""

    async def report(self, member: str, state: dict[str, Any]) -> None:
        """Record `member`'s state, for `REPORT_TTL_SECONDS` unless reported again."""
        ...

    async def members(self) -> list[dict[str, Any]]:
        """The live reports, oldest member name first; at most `MAX_MEMBERS`."""
        ...
