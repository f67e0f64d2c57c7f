"""`APP_WORKERS=2` on Redis, through the real `python -m app`: two worker processes serve one
port with one dataset and one quota; `/metrics` from either worker shows the whole pod (counters
summed, each worker's live gauges); a worker that dies is replaced; SIGTERM drains both.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import USERS, register, unique_email
from tests.live_server import LiveServer, start_server
from tests.redis_server import RedisServer

QUOTA = 40


def _fresh(server: LiveServer) -> httpx.Client:
    # One connection per request: the kernel hands each to whichever worker accepts it.
    return httpx.Client(
        base_url=server.base_url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
    )


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _pool_pids(http: httpx.Client) -> frozenset[int]:
    # Each worker has a scoring pool of its own: its pids tell the workers apart.
    checks = http.get("/health/detailed").json()["checks"]
    return frozenset(next(c for c in checks if c["name"] == "process_pool")["detail"]["pids"])


def _worker_pids(server: LiveServer) -> dict[int, int]:
    """Worker index -> pid of its latest start, from the supervisor's log."""
    started = [e for e in server.log_events() if e.get("event") == "worker_started"]
    return {e["worker"]: e["pid"] for e in started}


@pytest.fixture(scope="module")
def server(
    module_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("workers")
    metrics = folder / "metrics"
    metrics.mkdir()
    (metrics / "counter_1.db").write_bytes(b"left by an earlier run")
    live = start_server(
        folder / "server.log",
        {
            "APP_STORE": "redis",
            "APP_REDIS_URL": module_redis.url,
            "APP_WORKERS": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            "APP_RATE_LIMIT_REQUESTS": str(QUOTA),
            "APP_RATE_LIMIT_WINDOW_SECONDS": "3600",
            "APP_PROCESS_POOL_WARM_UP": "true",  # each worker's pool pids tell them apart
        },
    )
    yield live
    live.stop(30)


def _both_workers_serving(server: LiveServer) -> set[frozenset[int]]:
    seen: set[frozenset[int]] = set()
    with _fresh(server) as http:
        for _ in range(200):
            seen.add(_pool_pids(http))
            if len(seen) == 2:
                break
            time.sleep(0.05)
    return seen


def test_two_workers_serve_one_dataset_one_quota_and_one_metrics(server: LiveServer) -> None:
    # Both workers answer on the one port (the second may still be starting at first).
    assert len(_both_workers_serving(server)) == 2
    metrics_dir = next(
        Path(e["metrics_directory"])
        for e in server.log_events()
        if e.get("event") == "workers_starting"
    )
    assert not (metrics_dir / "counter_1.db").exists(), "an earlier run's files are removed"

    with _fresh(server) as http:
        # One dataset: a user created through one worker is seen by every request after it,
        # whichever worker takes it.
        user = register(http, unique_email("workers"))
        found = [http.get(f"{USERS}/{user['id']}").status_code for _ in range(20)]
        assert found == [200] * 20
        # One quota, counted in Redis: the pod allows QUOTA requests in all, not per worker.
        answers = [http.get(USERS).status_code for _ in range(QUOTA)]
        allowed = 1 + 20 + answers.count(200)  # the registration and the reads count too
        assert allowed == QUOTA, f"{allowed} allowed against a quota of {QUOTA}"
        assert answers[-1] == 429

        # One exposition: every scrape, whichever worker answers it, counts both workers'
        # requests (they were spread over both: see the first assertion).
        route = ("http_requests_total", (("method", "GET"), ("route", "/health/detailed"),
                 ("status", "200")))  # fmt: skip
        served = _samples(http.get("/metrics").text)[route]
        for _ in range(10):
            samples = _samples(http.get("/metrics").text)
            assert samples[route] == served
            # Live gauges are per worker: two pids, each with its breakers.
            pids = {
                dict(labels)["pid"]
                for (name, labels) in samples
                if name == "circuit_breaker_state" and dict(labels)["breaker"] == "redis"
            }
            assert len(pids) == 2


def test_a_dead_worker_is_replaced_and_sigterm_drains_both(server: LiveServer) -> None:
    before = _worker_pids(server)
    assert len(before) == 2
    os.kill(before[1], signal.SIGKILL)
    for _ in range(200):
        if _worker_pids(server)[1] != before[1]:
            break
        time.sleep(0.1)
    assert _worker_pids(server)[1] != before[1], "the killed worker is started again"
    assert any(e.get("event") == "worker_died" for e in server.log_events())
    assert len(_both_workers_serving(server)) == 2
    # Its live gauges no longer count: only the two running workers' pids are shown.
    with _fresh(server) as http:
        samples = _samples(http.get("/metrics").text)
    pids = {dict(labels)["pid"] for (name, labels) in samples if name == "circuit_breaker_state"}
    assert str(before[1]) not in pids

    assert server.stop(60) == 0
    events = [e.get("event") for e in server.log_events()]
    assert events.count("shutdown_complete") == 2, "each worker shut down in order"
    assert events[-1] == "workers_stopped"
