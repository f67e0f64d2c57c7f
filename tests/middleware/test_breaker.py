"""The circuit breaker with a fake clock: every transition, both ways of using it."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from app.middleware.resilience import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    CircuitBreakerMiddleware,
    CircuitOpenError,
)
from tests.fakes import FakeClock

CONFIG = BreakerConfig(
    window_size=4, min_calls=3, failure_rate=0.5, open_seconds=10, half_open_calls=2
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("test", CONFIG, clock=clock)


def _call(breaker: CircuitBreaker, failure: bool) -> None:
    breaker.record(breaker.acquire(), failure=failure)


def _open(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        _call(breaker, failure=True)
    assert breaker.state is BreakerState.OPEN


def test_stays_closed_below_the_minimum_number_of_calls(breaker: CircuitBreaker) -> None:
    _call(breaker, True)
    _call(breaker, True)
    assert breaker.state is BreakerState.CLOSED


def test_opens_when_the_failure_rate_reaches_the_threshold(breaker: CircuitBreaker) -> None:
    _call(breaker, False)
    _call(breaker, True)
    assert breaker.state is BreakerState.CLOSED  # 1 of 2: below min_calls
    _call(breaker, True)
    assert breaker.state is BreakerState.OPEN  # 2 of 3 >= 0.5


def test_window_slides_so_old_failures_age_out(breaker: CircuitBreaker) -> None:
    _call(breaker, True)
    for _ in range(4):
        _call(breaker, False)
    _call(breaker, True)
    assert breaker.state is BreakerState.CLOSED  # window [F, F, F, T]: 1 of 4


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
    assert breaker.state is BreakerState.HALF_OPEN
    first, second = breaker.acquire(), breaker.acquire()
    assert first.trial
    assert second.trial
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # only two trials at a time
    breaker.record(first, failure=False)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(second, failure=False)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["calls_in_window"] == 0


def test_a_failed_trial_reopens(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _open(breaker)
    clock.now += 10
    trial = breaker.acquire()
    breaker.record(trial, failure=True)
    assert breaker.state is BreakerState.OPEN
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
    assert breaker.state is BreakerState.CLOSED


def test_results_from_an_earlier_state_are_ignored(breaker: CircuitBreaker) -> None:
    slow = breaker.acquire()  # started while closed
    _open(breaker)
    breaker.record(slow, failure=False)
    assert breaker.state is BreakerState.OPEN


async def test_async_with_counts_exceptions_and_passes_them_on(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        with pytest.raises(ConnectionError):
            async with breaker:
                raise ConnectionError("dependency down")
    assert breaker.state is BreakerState.OPEN
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
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["calls_in_window"] == 0


def test_registry_creates_each_breaker_once() -> None:
    registry = BreakerRegistry(CONFIG)
    assert registry.get("a") is registry.get("a")
    registry.get("b")
    assert [b.name for b in registry.all()] == ["a", "b"]


def _status_app(statuses: list[int]):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        status = statuses.pop(0)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def test_middleware_counts_5xx_but_not_4xx(clock: FakeClock) -> None:
    registry = BreakerRegistry(CONFIG, clock=clock)
    statuses = [404, 422, 401, 409, 500, 502]
    app = CircuitBreakerMiddleware(_status_app(statuses), registry=registry, groups=[("/g", "g")])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        codes = [(await c.get("/g/x")).status_code for _ in range(6)]
        assert codes == [404, 422, 401, 409, 500, 502]
        assert registry.get("g").state is BreakerState.OPEN  # window [401, 409, 500, 502]: 2 of 4
        refused = await c.get("/g/x")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "10"
        assert refused.json()["type"] == "/problems/circuit-open"
        # Paths outside every group are never refused.
        statuses.append(200)
        assert (await c.get("/other")).status_code == 200


async def test_middleware_longest_prefix_picks_the_group(clock: FakeClock) -> None:
    registry = BreakerRegistry(CONFIG, clock=clock)
    statuses = [500] * 3 + [200]
    app = CircuitBreakerMiddleware(
        _status_app(statuses),
        registry=registry,
        groups=[("/demo", "demos"), ("/demo/flaky", "flaky")],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for _ in range(3):
            await c.get("/demo/flaky")
        assert registry.get("flaky").state is BreakerState.OPEN
        assert registry.get("demos").state is BreakerState.CLOSED
        assert (await c.get("/demo/slow")).status_code == 200


async def test_load_shedding_503_with_retry_after_is_not_a_failure(clock: FakeClock) -> None:
    registry = BreakerRegistry(CONFIG, clock=clock)

    async def shedding(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 503, "headers": [(b"retry-after", b"1")]}
        )
        await send({"type": "http.response.body", "body": b""})

    app = CircuitBreakerMiddleware(shedding, registry=registry, groups=[("/g", "g")])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for _ in range(10):
            assert (await c.get("/g")).status_code == 503
    assert registry.get("g").state is BreakerState.CLOSED
    assert registry.get("g").snapshot()["calls_in_window"] == 0
