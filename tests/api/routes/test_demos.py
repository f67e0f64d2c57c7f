"""The resilience demos' contract, in process: the slow demo answers within its delay, the
flaky one fails at the rate asked with a problem body, and `/resilience` shows what the layers
are set to."""

from __future__ import annotations

import httpx


async def test_the_slow_demo_waits_its_delay(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/demo/slow", params={"delay": 0.1})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["elapsed"] >= 0.1
    assert (await client.get("/api/v1/demo/slow", params={"delay": 61})).status_code == 422


async def test_the_flaky_demo_fails_at_the_rate_asked(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/demo/flaky", params={"failure_rate": 0})).status_code == 200
    failed = await client.get("/api/v1/demo/flaky", params={"failure_rate": 1})
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/v1/demo/flaky", params={"failure_rate": 2})).status_code == 422


async def test_resilience_lists_the_breakers_and_the_settings(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/resilience")).json()
    names = {breaker["name"] for breaker in body["breakers"]}
    assert "flaky" in names
    assert all(breaker["state"] == "closed" for breaker in body["breakers"])
    assert body["rate_limit"]["enabled"] is False  # the tests' setting
    assert body["timeout"]["seconds"] > 0
