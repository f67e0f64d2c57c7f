"""The shipped per-client bounds: the test environment lifts them for load tests from one
address; these modules put them back to prove each one."""

from __future__ import annotations

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

# The loop lag that says the loop was held: by a backtracking ETag pattern, for instance, it was
# 6.8 s late. A free loop on a 2-core machine running two suites at once was measured up to
# 0.72 s late: the scheduler's doing, not the server's.
HELD_LOOP_SECONDS = 2.0


def live_loop_lag(base_url: str) -> float:
    """`GET /live` answers 200 (from a client of its own, as Kubernetes probes); returns the
    server's own gauge of how late its event loop ran a timer in the last second. That gauge,
    not this client's timing, says whether the loop was held: on a busy machine a client's
    timing counts the machine's load too."""
    response = httpx.get(base_url + "/live", timeout=10)
    assert response.status_code == 200
    metrics = httpx.get(base_url + "/metrics", timeout=10).text
    return next(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("event_loop_lag_seconds ")
    )


def breaker_states(base_url: str) -> dict[str, str]:
    """Every breaker's state, from `/resilience`."""
    body = httpx.get(base_url + "/api/v1/resilience", timeout=10).json()
    return {breaker["name"]: breaker["state"] for breaker in body["breakers"]}
