"""The fleet report: renewed every second, expired when not renewed, and never stopped by a
store that fails (the view then holds this replica alone, marked incomplete)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.core.exceptions import StoreUnavailable
from app.memory.fleet import MemoryFleet
from app.services.fleet import FleetReporter
from app.stores.fleet import REPORT_TTL_SECONDS
from tests.fakes import FakeClock


class FailingFleet:
    """A store that fails the first reports, then takes them."""

    def __init__(self) -> None:
        self.failures = 2
        self.reports: list[str] = []

    async def report(self, member: str, state: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("down")
        self.reports.append(member)

    async def members(self) -> list[dict[str, Any]]:
        raise StoreUnavailable("down")


async def test_a_report_expires_unless_renewed() -> None:
    clock = FakeClock()
    fleet = MemoryFleet(clock=clock)
    await fleet.report("a:1", {"member": "a:1"})
    await fleet.report("b:2", {"member": "b:2"})
    assert [r["member"] for r in await fleet.members()] == ["a:1", "b:2"]
    clock.now += REPORT_TTL_SECONDS - 1
    await fleet.report("a:1", {"member": "a:1"})
    clock.now += 1.5
    assert [r["member"] for r in await fleet.members()] == ["a:1"]  # b stopped reporting


async def test_failing_reports_never_stop_the_reporting_and_the_view_keeps_this_replica(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr("app.services.fleet.REPORT_EVERY_SECONDS", 0.01)
    fleet = FailingFleet()
    reporter = FleetReporter(fleet, "me:1", lambda: {"member": "me:1"})
    reporter.start()
    for _ in range(200):
        if fleet.reports:
            break
        await asyncio.sleep(0.01)
    await reporter.close()
    assert len(fleet.reports) >= 1
    assert set(fleet.reports) == {"me:1"}
    assert fleet.failures == 0  # two reports failed, and it went on
    view = await reporter.view()
    assert view == {"member": "me:1", "complete": False, "replicas": [{"member": "me:1"}]}
