"""Faults injected into a dependency's pipeline: each kind does what it says to the calls and
to the recovery probe, and every fault ends by itself."""

from __future__ import annotations

import asyncio

import pytest

from app.core.breaker import BreakerConfig, BreakerRegistry, BreakerState
from app.core.dependency import Dependency
from app.core.faults import FaultSlot, InjectedFault
from tests.fakes import state_of


class Refused(Exception):
    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)


def _dependency(probe_answers: list[int]) -> Dependency:
    async def probe() -> None:
        probe_answers.append(1)

    return Dependency(
        "store",
        BreakerRegistry(BreakerConfig(window_size=4, min_calls=4, open_seconds=600)),
        max_in_flight=4,
        timeout_seconds=0.2,
        refuse=Refused,
        is_failure=lambda exc: isinstance(exc, ConnectionError | TimeoutError),
        probe=probe,
        probe_backoff_seconds=(0.01, 0.02),
    )


async def _answer(within_seconds: float) -> str:
    return "real"


async def test_an_outage_fails_every_call_and_every_probe_until_it_ends() -> None:
    probes: list[int] = []
    dependency = _dependency(probes)
    # A second: long enough that a busy machine still checks it while it lasts.
    dependency.faults.inject("outage", 1.0)
    for _ in range(4):
        with pytest.raises(InjectedFault):
            await dependency.call(_answer)
    assert state_of(dependency.breaker) is BreakerState.OPEN
    await asyncio.sleep(0.1)
    assert probes == []  # the probe went through the fault: it never reached the dependency
    assert state_of(dependency.breaker) is BreakerState.OPEN
    for _ in range(500):  # the fault ends by itself; the next probe answers
        if probes:
            break
        await asyncio.sleep(0.01)
    assert dependency.faults.fault is None
    assert probes
    assert state_of(dependency.breaker) is BreakerState.HALF_OPEN
    await dependency.close()


async def test_latency_past_the_call_time_is_a_timeout_and_below_it_a_wait() -> None:
    dependency = _dependency([])
    dependency.faults.inject("latency", 5, latency_seconds=1.0)
    with pytest.raises(TimeoutError):
        await dependency.call(_answer)  # 1 s of latency against a 0.2 s timeout
    dependency.faults.inject("latency", 5, latency_seconds=0.01)
    assert await dependency.call(_answer) == "real"
    assert dependency.faults.clear() is True
    assert dependency.faults.clear() is False
    await dependency.close()


async def test_an_error_rate_fails_about_that_share_of_calls() -> None:
    dependency = _dependency([])
    dependency.breaker.config = BreakerConfig(window_size=1000, min_calls=1000)
    dependency.faults.inject("error", 5, error_rate=0.5)
    failed = 0
    for _ in range(400):
        try:
            await dependency.call(_answer)
        except InjectedFault:
            failed += 1
    assert 120 < failed < 280
    await dependency.close()


async def test_a_fault_is_bounded_in_time_and_kind() -> None:
    slot = FaultSlot("store")
    with pytest.raises(ValueError, match="0-300 s"):
        slot.inject("outage", 301)
    with pytest.raises(ValueError, match="one of"):
        slot.inject("meteor", 5)  # type: ignore[arg-type]
    slot.inject("outage", 5)
    slot.inject("latency", 5, latency_seconds=0.1)  # replaces the outage
    snapshot = slot.snapshot()
    assert snapshot is not None
    assert (snapshot["kind"], snapshot["latency_ms"]) == ("latency", 100)
    slot.clear()
