"""The circuit-breaker layer over tiny ASGI apps: what counts as a failure, which group a path
is in."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from app.core.breaker import BreakerConfig, BreakerRegistry, BreakerState
from app.middleware.circuit_breaker import CircuitBreakerMiddleware
from tests.fakes import FakeClock

CONFIG = BreakerConfig(
    window_size=4, min_calls=3, failure_rate=0.5, open_seconds=10, half_open_calls=2
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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
