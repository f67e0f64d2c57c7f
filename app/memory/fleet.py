"""The fleet of one process (`MemoryFleet`); `RedisFleet` (app/redis/fleet.py) is its twin for
every replica sharing a Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from app.stores.fleet import REPORT_TTL_SECONDS


class MemoryFleet:
    """This process's own report, kept as long as it is renewed."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._reports: dict[str, tuple[float, dict[str, Any]]] = {}

    async def report(self, member: str, state: dict[str, Any]) -> None:
        """Record `member`'s state until it is `REPORT_TTL_SECONDS` old."""
        self._reports[member] = (self._clock() + REPORT_TTL_SECONDS, state)

    async def members(self) -> list[dict[str, Any]]:
        """The reports not yet expired."""
        now = self._clock()
        for member in [m for m, (until, _) in self._reports.items() if until <= now]:
            del self._reports[member]
        return [state for _, (_, state) in sorted(self._reports.items())]
