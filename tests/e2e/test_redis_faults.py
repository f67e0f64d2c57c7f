"""Redis killed with SIGKILL under load, then started again: the app answers 503 (never a 500,
never a hang), readiness follows Redis while liveness stays up, it recovers by itself, and no
write it acknowledged is lost (Redis runs AOF with `appendfsync always`)."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.e2e.helpers import USERS, unique_email
from tests.live_server import LiveServer
from tests.redis_server import RedisServer

TIMEOUT = 0.5
REDIS_PASSWORD = PASSWORD = "fault-test-redis-password-0451"  # module_redis requires it


@pytest.fixture(scope="module")
def server(module_redis: RedisServer, server_factory: ServerFactory) -> LiveServer:
    return server_factory(
        {
            "APP_STORE": "redis",
            "APP_REDIS_URL": module_redis.url,
            "APP_REDIS_TIMEOUT_SECONDS": str(TIMEOUT),
            # Breakers do open on a dead store (fail fast); short here so recovery is quick.
            "APP_BREAKER_OPEN_SECONDS": "1",
            "APP_CACHE_TTL_SECONDS": "0.2",
        }
    )


class Load:
    """Clients creating and reading users until stopped; every answer is recorded."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.stop = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.problems: Counter[str] = Counter()
        self.acknowledged: list[dict[str, object]] = []
        self.slowest = 0.0
        self._lock = threading.Lock()

    def run(self, worker: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10.0) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                if worker % 2:
                    body = {"email": unique_email("load"), "name": "L", "password": "password123"}
                    response = http.post(USERS, json=body)
                else:
                    response = http.get(f"{USERS}/1")
                elapsed = time.monotonic() - started
                with self._lock:
                    self.slowest = max(self.slowest, elapsed)
                    self.statuses[response.status_code] += 1
                    if response.status_code == 201:
                        self.acknowledged.append(response.json())
                    if response.status_code >= 500:
                        self.problems[response.json().get("type", "?")] += 1
                        assert "Retry-After" in response.headers, response.text


def _wait(predicate: object, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


def test_redis_killed_under_load_then_restarted(
    server: LiveServer, module_redis: RedisServer
) -> None:
    load = Load(server.base_url)
    probe = httpx.Client(base_url=server.base_url, timeout=5.0)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(load.run, worker) for worker in range(4)]
        time.sleep(1.0)
        before_kill = len(load.acknowledged)
        module_redis.kill()
        # Readiness turns 503 while Redis is gone; liveness stays 200 (no restart storm).
        _wait(lambda: probe.get("/ready").status_code == 503, 5)
        time.sleep(1.0)
        assert probe.get("/live").status_code == 200
        assert probe.get("/ready").status_code == 503
        module_redis.start()
        recovered = _wait(lambda: probe.get("/ready").status_code == 200, 10)
        _wait(lambda: httpx.get(f"{server.base_url}{USERS}/1").status_code == 200, 10)
        time.sleep(0.5)
        load.stop.set()
        for future in futures:
            future.result()
    probe.close()

    assert before_kill > 0
    assert load.statuses[500] == 0, load.statuses
    assert set(load.statuses) <= {200, 201, 503}, load.statuses
    assert load.statuses[503] > 0
    assert set(load.problems) <= {"/problems/store-unavailable", "/problems/circuit-open"}
    # No request waited on the dead Redis for much longer than the timeout.
    assert load.slowest < 3.0
    assert recovered < 5.0
    # Every user the app answered 201 for is there after the restart.
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        missing = [
            user["id"]
            for user in load.acknowledged
            if http.get(f"{USERS}/{user['id']}").status_code != 200
        ]
    assert missing == []


def test_a_redis_that_hangs_is_answered_503_within_the_timeout(
    server: LiveServer, module_redis: RedisServer
) -> None:
    assert module_redis.process is not None
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        _wait(lambda: http.get("/ready").status_code == 200, 10)
        time.sleep(1.5)  # let the breaker close after the previous test
        module_redis.process.send_signal(signal.SIGSTOP)  # alive, connected, answering nothing
        try:
            started = time.monotonic()
            response = http.post(
                USERS, json={"email": unique_email("hang"), "name": "H", "password": "password123"}
            )
            elapsed = time.monotonic() - started
            assert response.status_code == 503
            assert response.json()["type"] == "/problems/store-unavailable"
            assert response.headers["Retry-After"] == "1"
            assert elapsed < TIMEOUT + 1.0
            assert http.get("/ready").status_code == 503
            assert http.get("/live").status_code == 200
        finally:
            module_redis.process.send_signal(signal.SIGCONT)
        _wait(lambda: http.get("/ready").status_code == 200, 10)


def test_the_redis_password_never_reaches_the_logs(server: LiveServer) -> None:
    # After start-up, failures and recoveries: the URL is only ever logged redacted.
    text = server.log_text()
    assert "store_selected" in text
    assert "redis_call_failed" in text
    assert PASSWORD not in text
    with httpx.Client(base_url=server.base_url) as http:
        detailed = http.get("/health/detailed").text
    assert "redis://***@127.0.0.1" in detailed
    assert PASSWORD not in detailed
