"""Fakes shared by the unit tests."""

from __future__ import annotations

from app.core.breaker import BreakerConfig, BreakerState, CircuitBreaker


class FakeClock:
    """A clock the test moves by hand (`clock.now += 5`) instead of sleeping."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


# A small breaker for tests: opens at half of the last 4 calls (3 at least), for 10 s.
BREAKER_CONFIG = BreakerConfig(
    window_size=4, min_calls=3, failure_rate=0.5, open_seconds=10, half_open_calls=2
)


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state, read through a call: a type checker would otherwise keep the state
    an earlier assert narrowed it to, across the calls that change it."""
    return breaker.state
