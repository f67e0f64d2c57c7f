"""The flaky demo's upstream is a dependency like the others: its failures open its own breaker,
which then refuses at once (503 `circuit-open`) without calling it; an injected fault acts on
it; a client's failure rate of 0 is never counted against it."""

from __future__ import annotations

import pytest

from app.container import flaky_dependency
from app.core.breaker import BreakerConfig, BreakerRegistry, BreakerState
from app.core.config import Settings
from app.core.exceptions import BreakerOpen, ProblemType, SimulatedFailure
from app.core.faults import InjectedFault
from app.services.flaky_upstream import SimulatedUpstream


class Chances:
    """The upstream's dice, counted: how many calls reached it."""

    def __init__(self) -> None:
        self.rolls = 0

    def __call__(self) -> float:
        self.rolls += 1
        return 0.5


def _upstream(chances: Chances) -> SimulatedUpstream:
    breakers = BreakerRegistry(BreakerConfig(window_size=4, min_calls=4, failure_rate=0.5))
    dependency = flaky_dependency(Settings(env="development"), breakers)
    assert dependency is not None
    return SimulatedUpstream(dependency, latency_seconds=0, chance=chances)


async def test_failures_open_its_own_breaker_which_then_refuses_without_calling() -> None:
    chances = Chances()
    upstream = _upstream(chances)
    assert await upstream.fetch(0) == {"status": "ok", "failure_rate": 0}
    for _ in range(3):
        with pytest.raises(SimulatedFailure):
            await upstream.fetch(1)
    assert upstream.dependency.breaker.state is BreakerState.OPEN
    reached = chances.rolls
    with pytest.raises(BreakerOpen) as refused:
        await upstream.fetch(0)
    assert chances.rolls == reached  # refused without calling the upstream
    assert refused.value.type is ProblemType.CIRCUIT_OPEN
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert upstream.dependency.breaker.name == "flaky"


async def test_an_injected_outage_fails_its_calls_and_counts_for_its_breaker() -> None:
    chances = Chances()
    upstream = _upstream(chances)
    upstream.dependency.faults.inject("outage", seconds=5)
    for _ in range(4):
        with pytest.raises(InjectedFault):
            await upstream.fetch(0)
    assert chances.rolls == 0
    assert upstream.dependency.breaker.state is BreakerState.OPEN


def test_no_upstream_without_demos() -> None:
    breakers = BreakerRegistry(BreakerConfig())
    assert flaky_dependency(Settings(env="development", demos_enabled=False), breakers) is None
