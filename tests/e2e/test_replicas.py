"""Two real app processes (`python -m app` on two ports) on one real redis-server: everything a
user found broken with per-process stores now holds across replicas."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.e2e.helpers import TOKEN, USERS, bearer, login, register, unique_email
from tests.live_server import LiveServer
from tests.redis_server import RedisServer

QUOTA = 60
ME = "/api/v1/auth/me"
JOBS = "/api/v1/scoring/jobs"


def replica_env(module_redis: RedisServer) -> dict[str, str]:
    """What every replica shares: the store and the signing key (TEST_ENV's)."""
    return {
        "APP_STORE": "redis",
        "APP_REDIS_URL": module_redis.url,
        "APP_RATE_LIMIT_REQUESTS": str(QUOTA),
        "APP_RATE_LIMIT_WINDOW_SECONDS": "60",
        "APP_PROCESS_POOL_WORKERS": "1",
    }


@pytest.fixture(scope="module")
def replicas(
    module_redis: RedisServer, server_factory: ServerFactory
) -> tuple[LiveServer, LiveServer]:
    return server_factory(replica_env(module_redis)), server_factory(replica_env(module_redis))


@pytest.fixture
def a(replicas: tuple[LiveServer, LiveServer]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=replicas[0].base_url, timeout=10.0) as client:
        yield client


@pytest.fixture
def b(replicas: tuple[LiveServer, LiveServer]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=replicas[1].base_url, timeout=10.0) as client:
        yield client


def test_registered_on_a_logs_in_on_b(a: httpx.Client, b: httpx.Client) -> None:
    email = unique_email("ab")
    user = register(a, email)
    token = login(b, email, "password123")
    me = b.get(ME, headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    # And the email is taken on B too, in any letter case.
    taken = b.post(USERS, json={"email": email.upper(), "name": "X", "password": "password123"})
    assert taken.status_code == 409


def test_a_token_from_b_acts_only_as_its_own_user_on_a(a: httpx.Client, b: httpx.Client) -> None:
    first, second = unique_email("first"), unique_email("second")
    on_a = register(a, first)
    on_b = register(b, second)
    assert on_a["id"] != on_b["id"]  # one id counter for every replica
    token = login(b, second, "password123")
    me = a.get(ME, headers=bearer(token))
    assert (me.status_code, me.json()["email"]) == (200, second)
    # It may change its own account on A, and not the other one.
    assert (
        a.patch(f"{USERS}/{on_b['id']}", json={"name": "Mine"}, headers=bearer(token)).status_code
        == 200
    )
    assert (
        a.patch(
            f"{USERS}/{on_a['id']}", json={"name": "Not mine"}, headers=bearer(token)
        ).status_code
        == 403
    )


def test_a_patch_on_a_is_seen_by_a_get_on_b(a: httpx.Client, b: httpx.Client) -> None:
    email = unique_email("patch")
    user = register(a, email)
    token = bearer(login(a, email, "password123"))
    original = a.get(f"{USERS}/{user['id']}").headers["ETag"]
    changed = a.patch(f"{USERS}/{user['id']}", json={"name": "Renamed"}, headers=token)
    assert changed.status_code == 200
    seen = b.get(f"{USERS}/{user['id']}")
    assert seen.json()["name"] == "Renamed"
    assert seen.headers["ETag"] == changed.headers["ETag"]
    # A stale If-Match on B is refused: versions are shared too.
    stale = b.patch(
        f"{USERS}/{user['id']}",
        json={"name": "Late"},
        headers={**token, "If-Match": original},
    )
    assert stale.status_code == 412


def test_an_idempotency_key_retried_on_b_replays_as_answer(
    a: httpx.Client, b: httpx.Client
) -> None:
    body = {"email": unique_email("idem"), "name": "Once", "password": "password123"}
    key = {"Idempotency-Key": f"key-{time.monotonic_ns()}"}
    first = a.post(USERS, json=body, headers=key)
    again = b.post(USERS, json=body, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]


def test_a_job_submitted_on_a_is_read_on_b(a: httpx.Client, b: httpx.Client) -> None:
    email = unique_email("job")
    register(a, email)
    token = bearer(login(a, email, "password123"))
    records = [{"id": str(i), "features": {"x": i, "y": i % 7}} for i in range(500)]
    accepted = a.post(JOBS, json={"records": records, "weights": {"x": 1, "y": 2}}, headers=token)
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["Location"]
    deadline = time.monotonic() + 20
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        status = b.get(location, headers=token).json()
        if status.get("status") in ("done", "failed"):
            break
        time.sleep(0.1)
    assert status["status"] == "done", status
    assert status["result"]["count"] == 500  # type: ignore[index]
    # Still only its submitter's: another user is told it does not exist, on either replica.
    other = unique_email("other")
    register(b, other)
    assert b.get(location, headers=bearer(login(b, other, "password123"))).status_code == 404


def test_a_token_logged_out_on_a_is_refused_on_b(a: httpx.Client, b: httpx.Client) -> None:
    email = unique_email("logout")
    register(a, email)
    token = bearer(login(a, email, "password123"))
    assert b.get(ME, headers=token).status_code == 200
    assert a.post("/api/v1/auth/logout", headers=token).status_code == 204
    refused = b.get(ME, headers=token)
    assert refused.status_code == 401


def test_one_client_has_one_quota_across_both_replicas(a: httpx.Client, b: httpx.Client) -> None:
    email = unique_email("quota")
    register(a, email)
    token = bearer(login(b, email, "password123"))  # the quota is keyed by this token's user
    statuses = [(a if i % 2 else b).get(ME, headers=token).status_code for i in range(2 * QUOTA)]
    allowed = statuses.count(200)
    # One quota (plus the odd request that refilled while the test ran), not one per replica.
    assert QUOTA <= allowed <= QUOTA + 3, statuses
    assert statuses.count(429) == 2 * QUOTA - allowed
    refused_on = {("a" if i % 2 else "b") for i, s in enumerate(statuses) if s == 429}
    assert refused_on == {"a", "b"}


def test_the_store_emptied_never_lets_an_old_token_act_as_a_new_user(
    a: httpx.Client, b: httpx.Client, module_redis: RedisServer
) -> None:
    email = unique_email("flushed")
    user = register(a, email)
    token = bearer(login(a, email, "password123"))
    module_redis.flush()  # an operator empties Redis: its id counters start again from 0
    # Each replica resumes ids far past any it has seen: the old id goes to no one again.
    newcomers = [register(b, unique_email("newcomer")) for _ in range(user["id"] + 2)]
    assert all(n["id"] > user["id"] for n in newcomers)
    # And the old token acts as nobody: its account is gone.
    refused = a.get(ME, headers=token)
    assert refused.status_code == 401


def test_data_outlives_a_replica_restart(
    replicas: tuple[LiveServer, LiveServer],
    module_redis: RedisServer,
    server_factory: ServerFactory,
) -> None:
    email = unique_email("restart")
    with httpx.Client(base_url=replicas[0].base_url, timeout=10.0) as a:
        user = register(a, email)
        token = bearer(login(a, email, "password123"))
    replicas[0].stop()
    fresh = server_factory(replica_env(module_redis))
    with httpx.Client(base_url=fresh.base_url, timeout=10.0) as again:
        # The same account, and the token issued before the restart still acts as it.
        me = again.get(ME, headers=token)
        assert (me.status_code, me.json()["id"]) == (200, user["id"])
        assert (
            again.post(TOKEN, data={"username": email, "password": "password123"}).status_code
            == 200
        )
