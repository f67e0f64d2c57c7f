"""The shipped per-client bounds: the test environment lifts them for load tests from one
address; these modules put them back to prove each one."""

from __future__ import annotations

import time

import httpx

SHIPPED_BOUNDS = {
    "APP_LOGIN_ATTEMPTS_PER_MINUTE": "10",
    "APP_LOGIN_FAILURES_BEFORE_BACKOFF": "5",
    "APP_HASH_QUEUE": "16",
    "APP_SSE_MAX_STREAMS_PER_CLIENT": "8",
    "APP_WS_MAX_CONNECTIONS_PER_CLIENT": "8",
    "APP_CHAT_MAX_ROOM_MEMBERS": "50",
    "APP_MAX_CONNECTIONS": "2048",
}


def live_latency(base_url: str) -> float:
    """Seconds `GET /live` takes now, from a client of its own (as Kubernetes probes)."""
    start = time.perf_counter()
    response = httpx.get(base_url + "/live", timeout=10)
    assert response.status_code == 200
    return time.perf_counter() - start


def breaker_states(base_url: str) -> dict[str, str]:
    """Every breaker's state, from `/resilience`."""
    body = httpx.get(base_url + "/api/v1/resilience", timeout=10).json()
    return {breaker["name"]: breaker["state"] for breaker in body["breakers"]}
