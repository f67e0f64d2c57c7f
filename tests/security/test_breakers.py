"""Nothing a client sends opens a breaker for everyone else; a failing dependency still does."""

from __future__ import annotations

import httpx

from tests.e2e.helpers import new_user_with_token
from tests.live_server import LiveServer
from tests.security.defaults import SHIPPED_BOUNDS, breaker_states

SERVER_ENV = {
    **SHIPPED_BOUNDS,
    "APP_REQUEST_TIMEOUT_SECONDS": "0.3",
    "APP_BREAKER_WINDOW_SIZE": "10",
    "APP_BREAKER_MIN_CALLS": "5",
    # Scoring bodies are parsed in a worker: one importing numpy at the first task would take
    # longer than the 0.3 s timeout.
    "APP_PROCESS_POOL_WARM_UP": "true",
}


def test_hostile_input_leaves_every_breaker_closed(
    http: httpx.Client, live_server: LiveServer
) -> None:
    user, auth = new_user_with_token(http)
    url = f"/api/v1/users/{user['id']}"
    for _ in range(10):
        assert http.get("/api/v1/events", params={"topic": "bad topic!"}).status_code == 422
        stale = {**auth, "If-Match": '"1-' + "9" * 4400 + '"'}
        assert http.patch(url, json={"name": "x"}, headers=stale).status_code == 412
        # A request that runs into the timeout is the client's choice of delay, not a failure.
        assert http.get("/api/v1/demo/slow", params={"delay": 1}).status_code == 504
        assert http.post("/api/v1/scoring", content=b"{not json").status_code == 422
    assert set(breaker_states(live_server.base_url).values()) == {"closed"}
    assert http.get("/api/v1/users").status_code == 200
    assert (
        http.post(
            "/api/v1/users",
            json={"email": "after@example.com", "name": "A", "password": "password123"},
        ).status_code
        == 201
    )


def test_a_failing_dependency_still_opens_its_breaker(
    http: httpx.Client, live_server: LiveServer
) -> None:
    for _ in range(6):
        http.get("/api/v1/demo/flaky", params={"failure_rate": 1})
    states = breaker_states(live_server.base_url)
    assert states["flaky"] == "open"
    assert {name for name, state in states.items() if state != "closed"} == {"flaky"}
