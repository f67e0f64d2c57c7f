"""The kill-a-worker drill's contract, in process (with real worker processes): admin only,
409 while no worker is alive, and a killed worker costs the next task nothing. (The readiness
drain is in test_console.py, the fault switch in test_faults.py.)"""

from __future__ import annotations

import httpx

from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD

KILL = "/api/v1/admin/scoring/kill-worker"
PI = "/api/v1/cpu-intensive"


async def _bearer(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_only_an_admin_may_kill_a_worker(client: httpx.AsyncClient) -> None:
    assert (await client.post(KILL)).status_code == 401
    created = await client.post(
        "/api/v1/users",
        json={"email": "user@example.com", "name": "User", "password": "password123"},
    )
    assert created.status_code == 201
    user = await _bearer(client, "user@example.com", "password123")
    refused = await client.post(KILL, headers=user)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"


async def test_a_killed_worker_costs_the_next_task_nothing(client: httpx.AsyncClient) -> None:
    admin = await _bearer(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    # The tests' pool starts its worker at the first task: until then there is none to kill.
    early = await client.post(KILL, headers=admin)
    assert early.status_code == 409
    assert "none has started yet" in early.json()["detail"]
    first = await client.post(PI, json={"samples": 10_000})
    assert first.status_code == 200, first.text
    killed = await client.post(KILL, headers=admin)
    assert killed.status_code == 200, killed.text
    assert killed.json()["killed_pid"] == first.json()["worker_pid"]
    # The task meets the broken pool, which is replaced, and runs again there.
    after = await client.post(PI, json={"samples": 10_000})
    assert after.status_code == 200, after.text
    assert after.json()["worker_pid"] != killed.json()["killed_pid"]
    pool = next(
        check
        for check in (await client.get("/health/detailed")).json()["checks"]
        if check["name"] == "process_pool"
    )
    assert pool["detail"]["restarts"] == 1
