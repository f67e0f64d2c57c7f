"""The circuit-breaker layer over tiny ASGI apps: what counts as a failure, which group a path
is in."""

from __future__ import annotations

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.breaker import (
    BreakerRegistry,
    BreakerState,
    report_dependency_failure,
)
from app.middleware.circuit_breaker import CircuitBreakerMiddleware
from tests.fakes import BREAKER_CONFIG, FakeClock

CONFIG = BREAKER_CONFIG


def _status_app(answers: list[int | str]) -> ASGIApp:
    """Answers each call with the next status; "dependency" is a 500 in which the app reports
    a failed dependency, "crash" raises as a bug would."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        answer = answers.pop(0)
        if answer == "crash":
            raise RuntimeError("a bug a client's input triggered")
        if answer == "dependency":
            report_dependency_failure(scope)
            answer = 500
        await send({"type": "http.response.start", "status": answer, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def _client(app: CircuitBreakerMiddleware) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_only_reported_dependency_failures_open_the_breaker(clock: FakeClock) -> None:
    registry = BreakerRegistry(CONFIG, clock=clock)
    answers: list[int | str] = [404, 422, 500, 502, 503, "crash", 500, "dependency", "dependency"]
    app = CircuitBreakerMiddleware(_status_app(answers), registry=registry, groups=[("/g", "g")])
    async with _client(app) as c:
        for _ in range(7):
            await c.get("/g/x")
        # Client errors, bugs and plain 5xx answers: the window holds successes only.
        assert registry.get("g").state is BreakerState.CLOSED
        assert registry.get("g").snapshot()["failures_in_window"] == 0
        assert (await c.get("/g/x")).status_code == 500
        assert (await c.get("/g/x")).status_code == 500
        # Window [502, 503, dependency, dependency]... of 4: 2 failures reach the 0.5 rate.
        assert registry.get("g").state is BreakerState.OPEN
        refused = await c.get("/g/x")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "10"
        assert refused.json()["type"] == "/problems/circuit-open"
        # Paths outside every group are never refused.
        answers.append(200)
        assert (await c.get("/other")).status_code == 200


async def test_middleware_longest_prefix_picks_the_group(clock: FakeClock) -> None:
    registry = BreakerRegistry(CONFIG, clock=clock)
    answers: list[int | str] = ["dependency"] * 3 + [200]
    app = CircuitBreakerMiddleware(
        _status_app(answers),
        registry=registry,
        groups=[("/demo", "demos"), ("/demo/flaky", "flaky")],
    )
    async with _client(app) as c:
        for _ in range(3):
            await c.get("/demo/flaky")
        assert registry.get("flaky").state is BreakerState.OPEN
        assert registry.get("demos").state is BreakerState.CLOSED
        assert (await c.get("/demo/slow")).status_code == 200
        # Under a prefix means the prefix and then "/" or the end: a lookalike is not.
        answers.append(200)
        assert (await c.get("/demo/flakyx")).status_code == 200  # the demos group's
        assert (await c.get("/demo/flaky/1")).status_code == 503
