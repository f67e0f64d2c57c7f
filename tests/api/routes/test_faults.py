"""Faults injected into the memory store (the default): the same pipeline as Redis, so a
learner without Redis sees reads that need the store refused with 503, the `store` breaker
open and writes refused at the door, and recovery once the fault ends by itself."""

from __future__ import annotations

import asyncio
from itertools import count

import httpx

from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD

FAULTS = "/api/v1/admin/faults"


async def _admin(client: httpx.AsyncClient) -> dict[str, str]:
    token = (
        await client.post(
            "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def _state(client: httpx.AsyncClient, dependency: str) -> str:
    dependencies = (await client.get("/api/v1/resilience")).json()["dependencies"]
    return str(next(d for d in dependencies if d["name"] == dependency)["breaker"])


async def _breaker(client: httpx.AsyncClient) -> str:
    breakers = (await client.get("/api/v1/resilience")).json()["breakers"]
    return str(next(b for b in breakers if b["name"] == "store")["state"])


async def test_an_injected_store_outage_fails_fast_then_ends_by_itself(
    client: httpx.AsyncClient,
) -> None:
    admin = await _admin(client)
    assert (await client.get(FAULTS, headers=admin)).json() == {
        "faults": [
            {"dependency": "store", "fault": None},
            {"dependency": "hashing", "fault": None},
            {"dependency": "process_pool", "fault": None},
            {"dependency": "flaky", "fault": None},
        ]
    }
    injected = await client.put(
        f"{FAULTS}/store", json={"kind": "outage", "seconds": 2}, headers=admin
    )
    assert injected.status_code == 200, injected.text
    assert injected.json()["fault"]["kind"] == "outage"
    pages = count(1)
    # Pages never read have no copy to fall back on: 503 with Retry-After, never a 500.
    for _ in range(12):
        unseen = await client.get("/api/v1/users", params={"skip": next(pages)})
        assert unseen.status_code == 503
        assert "retry-after" in unseen.headers
    assert await _breaker(client) == "open"
    write = await client.post(
        "/api/v1/users", json={"email": "w@example.com", "name": "W", "password": "pw-123456"}
    )
    assert write.status_code == 503
    assert write.json()["type"] == "/problems/circuit-open"
    assert "store" in write.json()["detail"]

    # The fault ends by itself; the probe finds the store answering; the trial reads (pages
    # not cached yet) close the breaker, and writes succeed again.
    for _ in range(100):
        await client.get("/api/v1/users", params={"skip": next(pages)})
        if await _breaker(client) == "closed":
            break
        await asyncio.sleep(0.1)
    assert await _breaker(client) == "closed"
    again = await client.post(
        "/api/v1/users", json={"email": "w@example.com", "name": "W", "password": "pw-123456"}
    )
    assert again.status_code == 201
    assert (await client.get(FAULTS, headers=admin)).json()["faults"][0]["fault"] is None


async def test_a_fault_can_be_ended_early(client: httpx.AsyncClient) -> None:
    admin = await _admin(client)
    body = {"kind": "latency", "seconds": 60, "latency_ms": 50}
    assert (await client.put(f"{FAULTS}/store", json=body, headers=admin)).status_code == 200
    assert (await client.delete(f"{FAULTS}/store", headers=admin)).status_code == 204
    assert (await client.get(FAULTS, headers=admin)).json()["faults"][0]["fault"] is None
    assert (await client.delete(f"{FAULTS}/redis", headers=admin)).status_code == 404


async def test_hashing_down_refuses_sign_ups_fast_while_reads_go_on(
    client: httpx.AsyncClient,
) -> None:
    # The password-hashing threads are a dependency of their own (a bulkhead): when they
    # fail, what needs a hash (sign-ups, logins) is refused with 503 and Retry-After, and
    # nothing else notices.
    admin = await _admin(client)
    reader = await client.post(
        "/api/v1/users", json={"email": "r@example.com", "name": "R", "password": "pw-123456"}
    )
    assert reader.status_code == 201
    token = (
        await client.post(
            "/api/v1/auth/token", data={"username": "r@example.com", "password": "pw-123456"}
        )
    ).json()["access_token"]
    injected = await client.put(
        f"{FAULTS}/hashing", json={"kind": "outage", "seconds": 2}, headers=admin
    )
    assert injected.status_code == 200, injected.text
    emails = (f"h{i}@example.com" for i in range(100))
    for _ in range(3):
        sign_up = await client.post(
            "/api/v1/users", json={"email": next(emails), "name": "H", "password": "pw-123456"}
        )
        assert sign_up.status_code == 503
        assert "retry-after" in sign_up.headers
    assert (await client.get(f"/api/v1/users/{reader.json()['id']}")).status_code == 200
    assert (await client.get("/api/v1/users")).status_code == 200
    # Enough failed hashes open the hashing breaker (sign-ups then refused without trying);
    # a write that needs no hash is still not refused at the door for it.
    for _ in range(30):
        if await _state(client, "hashing") == "open":
            break
        await client.post(
            "/api/v1/users", json={"email": next(emails), "name": "H", "password": "pw-123456"}
        )
    assert await _state(client, "hashing") == "open"
    renamed = await client.patch(
        f"/api/v1/users/{reader.json()['id']}",
        json={"name": "Renamed"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert renamed.status_code == 200, renamed.text
    hashing = next(
        d
        for d in (await client.get("/api/v1/resilience")).json()["dependencies"]
        if d["name"] == "hashing"
    )
    assert hashing["fault"]["kind"] == "outage"
    # The drill ends by itself; the probe finds the threads answering; sign-ups work again.
    for _ in range(100):
        again = await client.post(
            "/api/v1/users", json={"email": next(emails), "name": "H", "password": "pw-123456"}
        )
        if again.status_code == 201:
            break
        await asyncio.sleep(0.1)
    assert again.status_code == 201, again.text


async def test_the_worker_pool_down_refuses_cpu_work_fast_and_nothing_else(
    client: httpx.AsyncClient,
) -> None:
    admin = await _admin(client)
    injected = await client.put(
        f"{FAULTS}/process_pool", json={"kind": "outage", "seconds": 2}, headers=admin
    )
    assert injected.status_code == 200, injected.text
    for _ in range(3):
        refused = await client.post("/api/v1/cpu-intensive", json={"samples": 1000})
        assert refused.status_code == 503, refused.text
        assert "retry-after" in refused.headers
    assert (await client.get("/api/v1/users")).status_code == 200
    # No place of the pool was kept by the refused tasks: once the drill ends, CPU work runs.
    for _ in range(100):
        answered = await client.post("/api/v1/cpu-intensive", json={"samples": 1000})
        if answered.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert answered.status_code == 200, answered.text
    detail = {c["name"]: c for c in (await client.get("/health/detailed")).json()["checks"]}
    assert detail["process_pool"]["detail"]["in_flight"] == 0
