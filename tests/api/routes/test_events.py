"""The event routes in process: publish and history (streams are tested against a real
server in tests/e2e/test_realtime.py)."""

from __future__ import annotations

import httpx


async def test_a_published_event_is_in_the_history(client: httpx.AsyncClient) -> None:
    accepted = await client.post("/api/v1/events", json={"topic": "demo.one", "data": {"n": 1}})
    assert accepted.status_code == 202
    event = accepted.json()
    history = (await client.get("/api/v1/events", params={"topic": "demo.*"})).json()
    assert [e["id"] for e in history["items"]] == [event["id"]]
    assert history["items"][0]["data"] == {"n": 1}
