"""This replica's report to the fleet, every second (`FleetReporter`), and the fleet view the
console polls: every replica's breakers and faults, like Turbine aggregating Hystrix streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from app.core.exceptions import StoreUnavailable
from app.core.logging import get_logger
from app.stores.fleet import Fleet

log = get_logger(__name__)

REPORT_EVERY_SECONDS = 1.0


class FleetReporter:
    """Reports `state()` as `member` every second while the app runs; `view()` is the fleet
    as the store knows it, this replica included even when the store cannot be read."""

    def __init__(self, fleet: Fleet, member: str, state: Callable[[], dict[str, Any]]) -> None:
        self.fleet = fleet
        self.member = member
        self._state = state
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> None:
        """Report now and every second from a task of its own."""
        self._task = asyncio.get_running_loop().create_task(self._report_forever())

    async def _report_forever(self) -> None:
        while True:
            try:
                await self.fleet.report(self.member, self._state())
                self._failing = False
            except Exception as exc:  # a failed report must never end the reporting
                # Nothing to do but try again: the other replicas see this one disappear,
                # which is the truth while it cannot reach the store.
                if not self._failing:
                    log.warning("fleet_report_failed", member=self.member, error=type(exc).__name__)
                self._failing = True
            await asyncio.sleep(REPORT_EVERY_SECONDS)

    async def view(self) -> dict[str, Any]:
        """Every replica's report (`complete` False when the store could not be read: then
        this replica's own report alone)."""
        own = self._state()
        try:
            replicas = await self.fleet.members()
            complete = True
        except StoreUnavailable:
            replicas, complete = [], False
        if not any(r.get("member") == self.member for r in replicas):
            replicas = sorted([*replicas, own], key=lambda r: str(r.get("member")))
        return {"member": self.member, "complete": complete, "replicas": replicas}

    async def close(self) -> None:
        """Stop reporting (the report expires by itself)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
