"""Which replica answered, and the fleet view, in process (memory store: a fleet of one; two
replicas on Redis are in tests/browser/test_console_fleet.py)."""

from __future__ import annotations

import os
import socket

import httpx


async def test_the_fleet_of_one_lists_this_process_and_its_breakers(
    client: httpx.AsyncClient,
) -> None:
    view = (await client.get("/api/v1/resilience/fleet")).json()
    member = f"{socket.gethostname()}:{os.getpid()}"
    assert view["shared"] is False
    assert view["complete"] is True
    assert view["member"] == member
    [replica] = view["replicas"]
    assert replica["member"] == member
    assert replica["instance"] == socket.gethostname()
    assert {b["name"] for b in replica["breakers"]} >= {"users", "store"}
    assert {d["name"] for d in replica["dependencies"]} >= {"store", "hashing", "process_pool"}
    resilience = (await client.get("/api/v1/resilience")).json()
    assert resilience["instance"] == {"id": socket.gethostname(), "member": member}


async def test_only_a_request_that_asks_learns_which_replica_answered(
    client: httpx.AsyncClient,
) -> None:
    plain = await client.get("/api/v1/users/1")
    assert "x-served-by" not in plain.headers
    assert "preference-applied" not in plain.headers
    asked = await client.get("/api/v1/users/1", headers={"Prefer": "return=minimal, served-by"})
    assert asked.headers["x-served-by"] == f"{socket.gethostname()}:{os.getpid()}"
    assert asked.headers["preference-applied"] == "served-by"


async def test_the_health_body_is_as_the_contract_says_and_the_detail_names_the_replica(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/health/detailed")).json()["instance"] == socket.gethostname()
