"""The middleware chain against a real server: timeout, breaker, GZip,
CORS, metrics and the probes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import USERS, assert_problem, register
from tests.live_server import LiveServer

API = "/api/v1"
DEMO = f"{API}/demo"
SERVER_ENV = {
    "APP_REQUEST_TIMEOUT_SECONDS": "1",
    "APP_BREAKER_WINDOW_SIZE": "4",
    "APP_BREAKER_MIN_CALLS": "4",
    "APP_BREAKER_FAILURE_RATE": "0.5",
    "APP_BREAKER_OPEN_SECONDS": "2",
    "APP_BREAKER_HALF_OPEN_CALLS": "2",
}


def _metrics(http: httpx.Client) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(
        v for found, v in samples.get(name, []) if all(found.get(k) == x for k, x in labels.items())
    )


# --- timeout ------------------------------------------------------------------------------------


def test_slow_handler_gets_504_and_its_cleanup_runs(
    http: httpx.Client, live_server: LiveServer
) -> None:
    start = time.monotonic()
    response = http.get(f"{DEMO}/slow", params={"delay": 5}, headers={"X-Request-ID": "slow-1"})
    elapsed = time.monotonic() - start
    body = assert_problem(response, 504)
    assert body["type"] == "/problems/timeout"
    assert elapsed < 3, "the timeout must not wait for the handler"
    finished = live_server.wait_for_events(
        lambda e: e.get("event") == "slow_demo_finished" and e.get("request_id") == "slow-1"
    )
    assert finished, "the handler's finally block did not run"
    assert finished[0]["cancelled"] is True


def test_fast_enough_handler_is_not_timed_out(http: httpx.Client) -> None:
    response = http.get(f"{DEMO}/slow", params={"delay": 0.1})
    assert response.status_code == 200
    assert response.json()["delay"] == 0.1


def test_out_of_range_delay_gets_422_stating_the_range(http: httpx.Client) -> None:
    body = assert_problem(http.get(f"{DEMO}/slow", params={"delay": 61}), 422)
    assert "60" in body["errors"][0]["msg"]


# --- circuit breaker ----------------------------------------------------------------------------


def _flaky_state(http: httpx.Client) -> str:
    breakers = {b["name"]: b for b in http.get("/api/v1/resilience").json()["breakers"]}
    return str(breakers["flaky"]["state"])


def test_breaker_opens_refuses_half_opens_and_closes_over_http(http: httpx.Client) -> None:
    for _ in range(4):
        assert_problem(http.get(f"{DEMO}/flaky", params={"failure_rate": 1}), 500)
    assert _flaky_state(http) == "open"
    refused = http.get(f"{DEMO}/flaky", params={"failure_rate": 0})
    body = assert_problem(refused, 503)
    assert body["type"] == "/problems/circuit-open"
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    # Other groups are unaffected by the flaky group's breaker.
    assert http.get(f"{DEMO}/slow", params={"delay": 0}).status_code == 200
    time.sleep(2.1)
    assert _flaky_state(http) == "half_open"
    assert http.get(f"{DEMO}/flaky", params={"failure_rate": 0}).status_code == 200
    assert _flaky_state(http) == "half_open"
    assert http.get(f"{DEMO}/flaky", params={"failure_rate": 0}).status_code == 200
    assert _flaky_state(http) == "closed"


def test_breaker_failed_trial_reopens(http: httpx.Client) -> None:
    for _ in range(4):
        http.get(f"{DEMO}/flaky", params={"failure_rate": 1})
    time.sleep(2.1)
    assert_problem(http.get(f"{DEMO}/flaky", params={"failure_rate": 1}), 500)
    assert _flaky_state(http) == "open"
    time.sleep(2.1)
    for _ in range(2):
        http.get(f"{DEMO}/flaky", params={"failure_rate": 0})
    assert _flaky_state(http) == "closed"


def test_client_errors_never_open_a_breaker(http: httpx.Client) -> None:
    for _ in range(10):
        assert http.get(f"{USERS}/999999").status_code == 404
    breakers = {b["name"]: b for b in http.get("/api/v1/resilience").json()["breakers"]}
    assert breakers["users"]["state"] == "closed"
    assert breakers["users"]["failures_in_window"] == 0


def test_resilience_reports_the_settings(http: httpx.Client) -> None:
    body = http.get("/api/v1/resilience").json()
    assert body["timeout"] == {"seconds": 1.0}
    assert body["rate_limit"]["enabled"] is False
    assert {b["name"] for b in body["breakers"]} >= {"users", "auth", "demos", "flaky"}


# --- GZip and CORS ------------------------------------------------------------------------------


def test_large_json_list_is_gzipped_small_answer_is_not(http: httpx.Client) -> None:
    for i in range(25):
        register(http, name=f"gzip user {i} " + "x" * 40)
    big = http.get(USERS, params={"limit": 100}, headers={"Accept-Encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"
    assert big.json()["total"] >= 25
    small = http.get("/live", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


def test_cors_preflight_from_an_allowed_origin(http: httpx.Client) -> None:
    response = http.options(
        USERS,
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, Idempotency-Key",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert response.headers["access-control-allow-credentials"] == "true"


def test_cors_preflight_from_another_origin_is_refused(http: httpx.Client) -> None:
    response = http.options(
        USERS, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_simple_cross_origin_get_exposes_our_headers(http: httpx.Client) -> None:
    response = http.get(USERS, headers={"Origin": "http://localhost:3000"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


# --- probes -------------------------------------------------------------------------------------


def test_probes_answer(http: httpx.Client) -> None:
    assert http.get("/live").json() == {"status": "alive"}
    assert http.get("/ready").json() == {"status": "ready"}
    verbose = http.get("/ready?verbose").json()
    assert {c["name"]: c["status"] for c in verbose["checks"]} == {
        "startup": "ok",
        "shutdown": "ok",
        "drain": "ok",
        "repository": "ok",
    }
    assert http.get("/health").json() == {"status": "ok"}
    detailed = http.get("/health/detailed").json()
    names = {c["name"] for c in detailed["checks"]}
    assert names >= {"repository", "breakers"}
    assert all(isinstance(c["latency_ms"], float) for c in detailed["checks"])


def test_probes_are_not_logged_at_info(http: httpx.Client, live_server: LiveServer) -> None:
    http.get("/live", headers={"X-Request-ID": "probe-quiet"})
    assert "probe-quiet" not in live_server.log_text()


# --- metrics ------------------------------------------------------------------------------------


def test_metrics_use_route_templates_and_one_label_for_unknown_paths(http: httpx.Client) -> None:
    user = register(http)
    http.get(f"{USERS}/{user['id']}")
    for i in range(3):
        http.get(f"/no/such/path/{i}")
    samples = _metrics(http)
    routes = {labels["route"] for labels, _ in samples["http_requests_total"]}
    assert f"{USERS}/{{user_id}}" in routes
    assert "<unmatched>" in routes
    assert not any(route.startswith("/no/such") for route in routes)
    assert not any(str(user["id"]) in route for route in routes)
    assert _value(samples, "http_requests_total", route="<unmatched>", status="404") >= 3
    assert _value(samples, "http_request_duration_seconds_count", route=f"{USERS}/{{user_id}}") >= 1
    assert _value(samples, "app_build_info") == 1
    assert _value(samples, "repository_records", collection="users") >= 2
    assert "http_requests_in_progress" in samples


def test_metrics_count_timeouts_and_breaker_transitions(http: httpx.Client) -> None:
    samples = _metrics(http)
    assert _value(samples, "http_request_timeouts_total", route=f"{DEMO}/slow") >= 1
    assert (
        _value(samples, "circuit_breaker_transitions_total", breaker="flaky", to_state="open") >= 1
    )
    assert _value(samples, "circuit_breaker_rejected_total", breaker="flaky") >= 1
    # One 0/1 series per state: the users breaker is closed, the flaky one is not.
    assert ({"breaker": "users", "state": "closed"}, 1.0) in samples["circuit_breaker_state"]
    assert ({"breaker": "users", "state": "open"}, 0.0) in samples["circuit_breaker_state"]


def test_streams_are_counted_but_not_timed_and_created_series_are_off(
    http: httpx.Client,
) -> None:
    assert http.get(f"{API}/stream/numbers", params={"count": 2}).status_code == 200
    # Counted when the server has finished the stream, a moment after the client read it all.
    deadline = time.monotonic() + 5
    while True:
        samples = _metrics(http)
        counted = _value(samples, "http_requests_total", route=f"{API}/stream/numbers")
        if counted >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert counted >= 1
    timed = [labels for labels, _ in samples["http_request_duration_seconds_count"]]
    assert not any(labels["route"] == f"{API}/stream/numbers" for labels in timed)
    assert {labels["status_class"] for labels in timed} <= {"2xx", "3xx", "4xx", "5xx"}
    assert not any(name.endswith("_created") for name in samples)


def test_metrics_pass_promtool_check(http: httpx.Client) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: .ci/run installs the Debian package prometheus")
        pytest.skip("promtool not installed (Debian package prometheus); CI installs it")
    text = http.get("/metrics").text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout  # promtool prints lint findings here
    assert result.stderr.strip() == "", result.stderr


# --- faults -------------------------------------------------------------------------------------


async def test_client_disconnecting_mid_request_leaves_the_server_healthy(
    live_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url) as client:
        with pytest.raises(httpx.ReadTimeout):
            # Only the read gives up: a connect slowed by a busy machine is not the point.
            await client.get(
                f"{DEMO}/slow", params={"delay": 0.5}, timeout=httpx.Timeout(10.0, read=0.1)
            )
        assert (await client.get("/ready")).status_code == 200

        async def in_progress() -> float:
            samples = (await client.get("/metrics")).text
            return sum(
                s.value
                for family in text_string_to_metric_families(samples)
                for s in family.samples
                if s.name == "http_requests_in_progress"
            )

        # The abandoned request ends once its 0.5 s handler does (polled: a busy machine is
        # slower to get there), and nothing stays counted as in progress.
        for _ in range(100):
            if await in_progress() == 0:
                break
            await asyncio.sleep(0.1)
        assert await in_progress() == 0
