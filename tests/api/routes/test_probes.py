"""Probes in process: what Kubernetes and a person see from each."""

from __future__ import annotations

import httpx


async def test_live_and_ready_answer_200_once_started(client: httpx.AsyncClient) -> None:
    assert (await client.get("/live")).json() == {"status": "alive"}
    ready = await client.get("/ready", params={"verbose": ""})
    assert ready.status_code == 200
    names = [check["name"] for check in ready.json()["checks"]]
    assert names[:2] == ["startup", "shutdown"]
    assert "repository" in names


async def test_health_detailed_lists_every_component(client: httpx.AsyncClient) -> None:
    body = (await client.get("/health/detailed")).json()
    components = {check["name"]: check for check in body["checks"]}
    assert set(components) == {
        "repository",
        "breakers",
        "process_pool",
        "password_hashing",
        "cache",
        "event_bus",
        "chat",
        "runtime",
    }
    # The tests' pool starts its worker at the first CPU task: until then none is missing.
    pool = components["process_pool"]
    assert pool["status"] == "ok"
    assert pool["detail"]["started"] is False
    assert pool["detail"]["alive"] == 0
    assert components["repository"]["critical"] is True


async def test_the_json_index_names_the_docs(client: httpx.AsyncClient) -> None:
    body = (await client.get("/")).json()
    assert body["docs"] == "/docs"
    assert body["openapi"] == "/openapi.json"
