"""HealthChecker: each check bounded, sync and async checks alike, degraded apart from failed."""

from __future__ import annotations

import asyncio

from app.services.health import Degraded, HealthChecker


async def test_results_say_ok_degraded_or_fail_in_registration_order() -> None:
    async def hangs() -> None:
        await asyncio.sleep(10)

    def raises() -> None:
        raise RuntimeError("disk on fire")

    checker = HealthChecker(timeout_seconds=0.05)
    checker.register("sync", lambda: {"n": 1}, critical=True)
    checker.register("flagged", lambda: {"n": 2}, degraded_if=lambda: True)
    checker.register("says_so", lambda: Degraded("half"))
    checker.register("hangs", hangs)
    checker.register("raises", raises)
    results = await checker.run()
    assert [(r.name, r.status) for r in results] == [
        ("sync", "ok"),
        ("flagged", "degraded"),
        ("says_so", "degraded"),
        ("hangs", "fail"),
        ("raises", "fail"),
    ]
    assert results[0].detail == {"n": 1}
    assert results[3].detail == "no answer within 0.05 s"
    assert results[4].detail == "RuntimeError: disk on fire"


async def test_critical_only_runs_the_checks_that_decide_readiness() -> None:
    checker = HealthChecker()
    checker.register("critical", lambda: "ok", critical=True)
    checker.register("other", lambda: "ok")
    assert [r.name for r in await checker.run(critical_only=True)] == ["critical"]
