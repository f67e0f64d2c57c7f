"""Redis stalled (SIGSTOP) under a real server: reads this replica has seen are served stale and
marked so, writes fail fast at the door once the `redis` breaker is open, and recovery comes as
soon as Redis answers again (a PING probe), not after the breaker's open period.

The breaker's open period is 10 minutes here, so a recovery inside the test can only be the
probe's doing; no assertion reads a wall clock.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.e2e.helpers import USERS, unique_email
from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.redis_server import RedisServer

REDIS_PASSWORD = "dependency-fault-redis-password-77"


@pytest.fixture(scope="module")
def server(module_redis: RedisServer, server_factory: ServerFactory) -> LiveServer:
    return server_factory(
        {
            "APP_STORE": "redis",
            "APP_REDIS_URL": module_redis.url,
            "APP_REDIS_TIMEOUT_SECONDS": "0.3",
            "APP_BREAKER_OPEN_SECONDS": "600",
            "APP_BREAKER_MIN_CALLS": "4",
            "APP_BREAKER_WINDOW_SIZE": "8",
            "APP_CACHE_TTL_SECONDS": "0.5",
        }
    )


@pytest.fixture
def stalled(module_redis: RedisServer) -> Iterator[RedisServer]:
    """Redis alive and connected but answering nothing, for the test's first part; resumed
    by the test (or, whatever happens, at the end)."""
    assert module_redis.process is not None
    module_redis.process.send_signal(signal.SIGSTOP)
    try:
        yield module_redis
    finally:
        module_redis.process.send_signal(signal.SIGCONT)


def _metric(http: httpx.Client, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    assert wanted or total >= 0
    return total


def _refused_without_body(server: LiveServer, method: str, path: str) -> tuple[str, Any]:
    """Send a request head that announces a body, send no body, and return the answer's head
    and its JSON body."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode(), json.loads(body)


def _redis_dependency(http: httpx.Client) -> dict[str, Any]:
    dependencies = http.get("/api/v1/resilience").json()["dependencies"]
    found: dict[str, Any] = next(d for d in dependencies if d["name"] == "redis")
    return found


def _redis_breaker(http: httpx.Client) -> str:
    breakers = http.get("/api/v1/resilience").json()["breakers"]
    return str(next(b for b in breakers if b["name"] == "redis")["state"])


def _until(predicate: object, attempts: int, pause: float = 0.1) -> int:
    """Try `predicate` up to `attempts` times; the attempt it held on (bounded by a count)."""
    for attempt in range(attempts):
        if predicate():  # type: ignore[operator]
            return attempt
        time.sleep(pause)
    raise AssertionError(f"not after {attempts} attempts")


def test_a_stalled_redis_serves_stale_reads_refuses_writes_and_recovers_by_probe(
    server: LiveServer, module_redis: RedisServer, request: pytest.FixtureRequest
) -> None:
    http = httpx.Client(base_url=server.base_url, timeout=10.0)
    email = unique_email("stale")
    created = http.post(USERS, json={"email": email, "name": "Stale", "password": "password123"})
    assert created.status_code == 201
    user_id = created.json()["id"]
    token = http.post(
        "/api/v1/auth/token", data={"username": email, "password": "password123"}
    ).json()["access_token"]
    fresh = http.get(f"{USERS}/{user_id}")
    assert fresh.status_code == 200
    assert "cache-status" not in fresh.headers  # a fresh read is not marked
    page = http.get(USERS, params={"limit": 5})
    assert page.status_code == 200
    assert _redis_breaker(http) == "closed"

    request.getfixturevalue("stalled")
    time.sleep(0.6)  # the cached copies are now past their TTL

    # Every read of the user this replica had seen is answered from its copy, marked stale;
    # meanwhile the failing calls open the redis breaker.
    for _ in range(8):
        stale = http.get(f"{USERS}/{user_id}")
        assert stale.status_code == 200, stale.text
        assert stale.json()["name"] == "Stale"
        assert stale.headers["etag"] == fresh.headers["etag"]
        status = stale.headers["cache-status"]
        assert status.startswith("resilient-api; hit; ttl=-") or "ttl=0;" in status
        assert 'detail="stale-if-error"' in status
        assert int(stale.headers["age"]) >= 0
    _until(lambda: _redis_breaker(http) == "open", 50)
    redis = _redis_dependency(http)
    assert redis["name"] == "redis"
    assert redis["probing"] is True  # PING with backoff until Redis answers

    # With the breaker open, nothing waits on Redis: the stale read, the list page, the
    # conditional read, all answered from the copy.
    assert http.get(f"{USERS}/{user_id}").headers["cache-status"].endswith('"stale-if-error"')
    listed = http.get(USERS, params={"limit": 5})
    assert listed.status_code == 200
    assert "stale-if-error" in listed.headers["cache-status"]
    assert listed.json()["items"] == page.json()["items"]
    not_modified = http.get(f"{USERS}/{user_id}", headers={"If-None-Match": fresh.headers["etag"]})
    assert not_modified.status_code == 304
    # A stale copy is never shown with more than anyone may see: the token cannot be checked
    # while Redis is down, so the owner gets the public view too.
    owner = http.get(f"{USERS}/{user_id}", headers={"Authorization": f"Bearer {token}"})
    assert owner.status_code == 200
    assert "email" not in owner.json()
    # A user this replica never read has no copy: 503, with Retry-After, never a 500.
    unseen = http.get(f"{USERS}/999999")
    assert unseen.status_code == 503
    assert "Retry-After" in unseen.headers
    # Writes fail fast at the door, before their body is read: one whose body never comes is
    # answered at once (a server waiting for it would answer 408 when its patience ran out).
    head, body = _refused_without_body(server, "PATCH", f"{USERS}/{user_id}")
    assert head.startswith("HTTP/1.1 503"), head
    assert "retry-after: " in head.lower()
    assert body["type"] == "/problems/circuit-open"
    assert "redis" in body["detail"]
    registered = http.post(
        USERS, json={"email": unique_email("x"), "name": "X", "password": "password123"}
    )
    assert registered.status_code == 503
    assert registered.json()["type"] == "/problems/circuit-open"
    assert http.get("/live").status_code == 200
    assert _metric(http, "dependency_fallbacks_total", fallback="stale_if_error") >= 10

    # Resume Redis: the probe sees it answer and half-opens the breaker long before its
    # 10-minute open period; the trial calls close it, and reads are fresh again.
    assert module_redis.process is not None
    module_redis.process.send_signal(signal.SIGCONT)
    _until(lambda: "cache-status" not in http.get(f"{USERS}/{user_id}").headers, 200)
    # Its trial calls are the next reads that reach Redis (a page not cached yet, each time).
    pages = iter(range(1, 1000))
    _until(
        lambda: (
            http.get(USERS, params={"skip": next(pages)}).status_code == 200
            and _redis_breaker(http) == "closed"
        ),
        100,
    )
    assert _metric(http, "dependency_probes_total", dependency="redis", result="ok") >= 1
    renamed = http.patch(
        f"{USERS}/{user_id}",
        json={"name": "Back"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert renamed.status_code == 200, renamed.text
    assert http.get(f"{USERS}/{user_id}").json()["name"] == "Back"
    log = server.log_text()
    assert "dependency_answered_again" in log
    http.close()


def test_an_injected_outage_runs_the_real_pipeline_and_ends_by_itself(
    server: LiveServer,
) -> None:
    http = httpx.Client(base_url=server.base_url, timeout=10.0)
    admin = {
        "Authorization": "Bearer "
        + http.post(
            "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ).json()["access_token"]
    }
    email = unique_email("drill")
    created = http.post(USERS, json={"email": email, "name": "Drill", "password": "password123"})
    user_id = created.json()["id"]
    _until(lambda: http.get(f"{USERS}/{user_id}").status_code == 200, 50)  # cached here
    _until(lambda: _redis_breaker(http) == "closed", 100)
    faults = "/api/v1/admin/faults/redis"

    # Only an admin, only known dependencies, only faults that make sense.
    user_token = http.post(
        "/api/v1/auth/token", data={"username": email, "password": "password123"}
    ).json()["access_token"]
    body = {"kind": "outage", "seconds": 3}
    refused = http.put(faults, json=body, headers={"Authorization": f"Bearer {user_token}"})
    assert refused.status_code == 403
    assert http.put("/api/v1/admin/faults/postgres", json=body, headers=admin).status_code == 404
    for bad in (
        {"kind": "outage", "seconds": 301},
        {"kind": "latency", "seconds": 5},  # latency_ms missing
        {"kind": "outage", "seconds": 5, "error_rate": 0.5},
        {"kind": "meteor", "seconds": 5},
    ):
        assert http.put(faults, json=bad, headers=admin).status_code == 422, bad
    assert _redis_dependency(http)["fault"] is None

    injected = http.put(faults, json=body, headers=admin)
    assert injected.status_code == 200
    assert injected.json()["fault"]["kind"] == "outage"
    redis = _redis_dependency(http)
    assert redis["fault"]["kind"] == "outage"
    assert 0 < redis["fault"]["seconds_left"] <= 3
    assert _metric(http, "faults_active", dependency="redis", kind="outage") == 1
    time.sleep(1.1)  # the cached copy is past its TTL: reads now need Redis
    # Redis itself is fine; the pipeline fails every call, so the real fallbacks run.
    for _ in range(6):
        stale = http.get(f"{USERS}/{user_id}")
        assert stale.status_code == 200
        assert "stale-if-error" in stale.headers["cache-status"]
    _until(lambda: _redis_breaker(http) == "open", 50)
    write = http.post(
        USERS, json={"email": unique_email("w"), "name": "W", "password": "password123"}
    )
    assert write.status_code == 503
    assert write.json()["type"] == "/problems/circuit-open"

    # It ends by itself; the probe then finds Redis answering and the reads are fresh again.
    _until(lambda: _redis_dependency(http)["fault"] is None, 60)
    assert _metric(http, "faults_active", dependency="redis", kind="outage") == 0
    pages = iter(range(1, 1000))
    _until(
        lambda: (
            http.get(USERS, params={"skip": next(pages)}).status_code == 200
            and _redis_breaker(http) == "closed"
        ),
        150,
    )
    assert "cache-status" not in http.get(f"{USERS}/{user_id}").headers
    log = server.log_text()
    assert "fault_injected" in log
    [ended] = [line for line in log.splitlines() if "fault_ended" in line]
    assert '"reason":"expired"' in ended
    http.close()
