"""Redis without its data: killed (SIGKILL) and started again with its persistence files gone,
as a Redis without AOF comes back. Through a real server on a real redis-server: the loss is
found, logged and counted, `/ready` says so (and stays 200), no id is handed out again, no old
ETag matches a new record, and the admin can log in again.

On acf3955 the next user got id 2, the id of an account clients still held; the admin was
gone (login 401) and `/ready` said nothing.
"""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.e2e.helpers import USERS, admin_headers, register, unique_email
from tests.live_server import LiveServer
from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def server(module_redis: RedisServer, server_factory: ServerFactory) -> LiveServer:
    return server_factory(
        {
            "APP_STORE": "redis",
            "APP_REDIS_URL": module_redis.url,
            "APP_REDIS_TIMEOUT_SECONDS": "0.5",
            # Every read goes to Redis: a cached copy would hide what Redis holds.
            "APP_CACHE_TTL_SECONDS": "0.001",
        }
    )


def _register_retrying(http: httpx.Client) -> dict[str, object]:
    body = {"email": unique_email("after"), "name": "After", "password": "password123"}
    for _ in range(50):
        response = http.post(USERS, json=body)
        if response.status_code != 503:
            break
        time.sleep(0.1)
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


def _ready_detail(http: httpx.Client) -> dict[str, object]:
    # Right after Redis restarts, the app's subscriptions reconnect: ready again within moments.
    for _ in range(100):
        ready = http.get("/ready", params={"verbose": ""})
        if ready.status_code == 200:
            break
        time.sleep(0.1)
    assert ready.status_code == 200, ready.text
    check = next(c for c in ready.json()["checks"] if c["name"] == "store_identity")
    return {"status": check["status"], **check["detail"]}


def test_redis_that_comes_back_empty_is_detected_and_no_id_or_etag_is_reused(
    server: LiveServer, module_redis: RedisServer
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        before = [register(http, unique_email("lost")) for _ in range(3)]
        etags = {u["id"]: http.get(f"{USERS}/{u['id']}").headers["etag"] for u in before}
        highest = max(etags)
        assert _ready_detail(http)["status"] == "ok"

        module_redis.kill()
        shutil.rmtree(module_redis.directory / "appendonlydir", ignore_errors=True)
        module_redis.start()

        # The first write after the loss finds it (its id script sees no epoch). The app's
        # pooled connections died with Redis: a write on one is answered 503, as it should be
        # (a write is never retried blindly), and the client retries.
        created = _register_retrying(http)
        assert created["id"] > highest, "an id clients may still hold is never given again"
        new_etag = http.get(f"{USERS}/{created['id']}").headers["etag"]
        assert new_etag not in etags.values()
        for user_id in etags:
            assert http.get(f"{USERS}/{user_id}").status_code == 404  # gone, not someone else

        detail = _ready_detail(http)
        assert detail["status"] == "degraded"
        losses = detail["losses"]
        assert isinstance(losses, list)
        assert len(losses) == 1
        assert losses[0]["found"] == "no epoch"
        # The admin account is made again, as at first start; its old token's account is gone.
        for _ in range(100):
            if "admin_restored_after_data_loss" in server.log_text():
                break
            time.sleep(0.1)
        assert http.get(USERS, headers=admin_headers(http)).status_code == 200

        metrics = http.get("/metrics").text
        assert "store_data_loss_total 1.0" in metrics
    assert "store_data_lost" in server.log_text()
