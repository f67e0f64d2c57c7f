"""The circuit breaker with a fake clock: every transition, and `async with` use."""

from __future__ import annotations

import asyncio

import pytest

from app.core.breaker import BreakerConfig, BreakerRegistry, BreakerState, CircuitBreaker
from app.core.exceptions import CircuitOpenError
from tests.fakes import BREAKER_CONFIG, FakeClock, state_of

CONFIG = BREAKER_CONFIG


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("test", CONFIG, clock=clock)


def _call(breaker: CircuitBreaker, failure: bool) -> None:
    breaker.record(breaker.acquire(), failure=failure)


def _open(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        _call(breaker, failure=True)
    assert state_of(breaker) is BreakerState.OPEN


def test_stays_closed_below_the_minimum_number_of_calls(breaker: CircuitBreaker) -> None:
    _call(breaker, True)
    _call(breaker, True)
    assert state_of(breaker) is BreakerState.CLOSED


def test_opens_when_the_failure_rate_reaches_the_threshold(breaker: CircuitBreaker) -> None:
    _call(breaker, False)
    _call(breaker, True)
    assert state_of(breaker) is BreakerState.CLOSED  # 1 of 2: below min_calls
    _call(breaker, True)
    assert state_of(breaker) is BreakerState.OPEN  # 2 of 3 >= 0.5


def test_window_slides_so_old_failures_age_out(breaker: CircuitBreaker) -> None:
    _call(breaker, True)
    for _ in range(4):
        _call(breaker, False)
    _call(breaker, True)
    assert state_of(breaker) is BreakerState.CLOSED  # window [F, F, F, T]: 1 of 4


def test_open_refuses_with_seconds_until_half_open(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.now += 2.5
    with pytest.raises(CircuitOpenError) as err:
        breaker.acquire()
    assert err.value.retry_after == 8


def test_refused_calls_do_not_enter_the_window(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _open(breaker)
    for _ in range(10):
        with pytest.raises(CircuitOpenError):
            breaker.acquire()
    assert breaker.snapshot()["calls_in_window"] == 3


def test_half_open_after_the_wait_with_limited_trials(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.now += 10
    assert state_of(breaker) is BreakerState.HALF_OPEN
    first, second = breaker.acquire(), breaker.acquire()
    assert first.trial
    assert second.trial
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # only two trials at a time
    breaker.record(first, failure=False)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    breaker.record(second, failure=False)
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.snapshot()["calls_in_window"] == 0


def test_a_failed_trial_reopens(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _open(breaker)
    clock.now += 10
    trial = breaker.acquire()
    breaker.record(trial, failure=True)
    assert state_of(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as err:
        breaker.acquire()
    assert err.value.retry_after == 10


def test_an_abandoned_trial_frees_its_slot(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _open(breaker)
    clock.now += 10
    first, second = breaker.acquire(), breaker.acquire()
    breaker.record(first, failure=None)
    third = breaker.acquire()
    breaker.record(second, failure=False)
    breaker.record(third, failure=False)
    assert state_of(breaker) is BreakerState.CLOSED


def test_results_from_an_earlier_state_are_ignored(breaker: CircuitBreaker) -> None:
    slow = breaker.acquire()  # started while closed
    _open(breaker)
    breaker.record(slow, failure=False)
    assert state_of(breaker) is BreakerState.OPEN


async def test_async_with_counts_exceptions_and_passes_them_on(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        with pytest.raises(ConnectionError):
            async with breaker:
                raise ConnectionError("dependency down")
    assert state_of(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("must not run while open")


async def test_async_with_is_safe_across_concurrent_tasks(clock: FakeClock) -> None:
    breaker = CircuitBreaker("conc", BreakerConfig(window_size=10, min_calls=10), clock=clock)

    async def ok(delay: float) -> None:
        async with breaker:
            await asyncio.sleep(delay)

    await asyncio.gather(*(ok(0.001 * (i % 3)) for i in range(10)))
    assert breaker.snapshot()["calls_in_window"] == 10
    assert breaker.snapshot()["failures_in_window"] == 0


async def test_cancellation_is_not_a_failure(breaker: CircuitBreaker) -> None:
    async def hang() -> None:
        async with breaker:
            await asyncio.sleep(10)

    for _ in range(3):
        task = asyncio.create_task(hang())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.snapshot()["calls_in_window"] == 0


def test_registry_creates_each_breaker_once() -> None:
    registry = BreakerRegistry(CONFIG)
    assert registry.get("a") is registry.get("a")
    registry.get("b")
    assert [b.name for b in registry.all()] == ["a", "b"]
