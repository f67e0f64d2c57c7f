"""The console's view of the fleet in real Chromium: two replicas on one Redis, each reporting
its breakers every second; the console served by one lists both, shows the other's breaker
open while its own is closed, names the replica that answered each call, and drops a replica
that stopped."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.conftest import Console
from tests.conftest import ServerFactory
from tests.live_server import LiveServer
from tests.redis_server import RedisServer

EXPECTED_ERRORS = ("status of 500 (Internal Server Error)", "status of 503 (Service Unavailable)")


def _replica(factory: ServerFactory, redis: RedisServer, name: str) -> LiveServer:
    return factory(
        {
            "APP_STORE": "redis",
            "APP_REDIS_URL": redis.url,
            "APP_INSTANCE_ID": name,
            "APP_BREAKER_OPEN_SECONDS": "60",
        }
    )


@pytest.fixture(scope="module")
def live_server(server_factory: ServerFactory, module_redis: RedisServer) -> LiveServer:
    """The replica the console is served by."""
    return _replica(server_factory, module_redis, "replica-a")


@pytest.fixture(scope="module")
def other(server_factory: ServerFactory, module_redis: RedisServer) -> LiveServer:
    return _replica(server_factory, module_redis, "replica-b")


def test_the_console_lists_every_replica_with_its_own_breakers(
    console_page: Console, live_server: LiveServer, other: LiveServer
) -> None:
    with httpx.Client(base_url=other.base_url) as http:  # the flaky breaker opens on B only
        for _ in range(12):
            http.get("/api/v1/demo/flaky", params={"failure_rate": 1})
    page = console_page.open().page
    a = f"#fleet-table tr[data-member='replica-a:{live_server.process.pid}']"
    b = f"#fleet-table tr[data-member='replica-b:{other.process.pid}']"
    page.wait_for_selector(f"{a}[data-open='']")
    page.wait_for_selector(f"{b}[data-open='flaky']")
    assert "flaky: open" in page.locator(b).inner_text()
    assert "2 sharing Redis" in page.locator("#fleet-note").inner_text()
    # Every call the console makes says which replica answered it: this one.
    page.wait_for_selector(f"#served-by[data-member='replica-a:{live_server.process.pid}']")
    console_page.shoot("fleet", "#breakers")

    other.stop()  # its report expires within 3 s: it leaves the table by itself
    page.wait_for_selector(b, state="detached", timeout=10_000)
    assert page.locator("#fleet-table tr").count() == 1
