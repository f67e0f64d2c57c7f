"""The event routes in process: publish, history, and headers a stream refuses."""

from __future__ import annotations

import httpx


async def test_a_published_event_is_in_the_history(client: httpx.AsyncClient) -> None:
    accepted = await client.post("/api/v1/events", json={"topic": "demo.one", "data": {"n": 1}})
    assert accepted.status_code == 202
    event = accepted.json()
    history = (await client.get("/api/v1/events", params={"topic": "demo.*"})).json()
    assert [e["id"] for e in history["items"]] == [event["id"]]
    assert history["items"][0]["data"] == {"n": 1}


async def test_a_last_event_id_that_is_not_an_id_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/events/stream", headers={"Last-Event-ID": "abc"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
