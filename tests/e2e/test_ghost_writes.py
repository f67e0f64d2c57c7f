"""A write Redis applied but whose answer never reached the app (a "ghost write"), through a real
server and a real Redis: the client hears 503, retries with the same `Idempotency-Key`, as the
docs advise, and gets the original 201 with the id it created, never 409 "email taken".

A small TCP proxy sits between the app and Redis and holds back Redis's answer to the one
command that commits the new account (the commit script carrying the test's email), for longer
than the app's Redis timeout: Redis has applied it, the app has given up on it. That is what a
Redis pause or a network partition at the wrong moment does, made deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bench._proxy import AnswerHoldingProxy
from tests.conftest import ServerFactory
from tests.e2e.helpers import USERS, admin_headers
from tests.redis_server import RedisServer

GHOST_EMAIL = b"ghost-e2e@example.com"


@pytest.fixture(scope="module")
def proxy(module_redis: RedisServer) -> Iterator[AnswerHoldingProxy]:
    # The commit script's call carries the new record, email included; lookups do not run a
    # script, so only the commit's answer is held.
    with AnswerHoldingProxy(module_redis.port, (b"EVALSHA", GHOST_EMAIL)) as running:
        yield running


def test_a_retry_of_a_write_redis_applied_but_never_answered_replays_the_201(
    proxy: AnswerHoldingProxy, module_redis: RedisServer, server_factory: ServerFactory
) -> None:
    server = server_factory(
        {
            "APP_STORE": "redis",
            "APP_REDIS_URL": module_redis.url.replace(f":{module_redis.port}", f":{proxy.port}", 1),
            "APP_REDIS_TIMEOUT_SECONDS": "0.3",
        }
    )
    body = {"email": GHOST_EMAIL.decode(), "name": "Ghost", "password": "password123"}
    headers = {"Idempotency-Key": "ghost-e2e-1"}
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        # One account first: Redis then knows the commit script, so the held EVALSHA is applied
        # (the very first one would answer NOSCRIPT and change nothing).
        warm = {"email": "warm-e2e@example.com", "name": "Warm", "password": "password123"}
        assert http.post(USERS, json=warm).status_code == 201
        first = http.post(USERS, json=body, headers=headers)
        assert first.status_code == 503, first.text
        assert proxy.triggered == 1, "the commit's answer was held, not an earlier call's"

        retry = http.post(USERS, json=body, headers=headers)
        assert retry.status_code == 201, (retry.text, proxy.triggered)
        assert retry.headers["idempotent-replayed"] == "true"
        created = retry.json()
        assert retry.headers["location"] == f"{USERS}/{created['id']}"

        # Exactly one account, the one the first attempt wrote.
        found = http.get(
            USERS, params={"email": GHOST_EMAIL.decode()}, headers=admin_headers(http)
        ).json()
        assert found["total"] == 1
        assert found["items"][0]["id"] == created["id"]
        # Without the key, the email is simply taken.
        assert http.post(USERS, json=body).status_code == 409
    assert "idempotent_write_found" in server.log_text()
