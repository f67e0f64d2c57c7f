"""The SSE ticker's contract, in process: ticks with ids from 1, a resume after
`Last-Event-ID`, 204 past the end (which stops `EventSource`), and 404 for an unknown handle."""

from __future__ import annotations

import json

import httpx
from httpx_sse import aconnect_sse

TICKER = "/api/v1/sse/stream"


async def _ticks(client: httpx.AsyncClient, **headers: str) -> list[tuple[str, int]]:
    params = {"interval": 0.05, "count": 3}
    async with aconnect_sse(client, "GET", TICKER, params=params, headers=headers) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [
            (event.id, json.loads(event.data)["n"])
            async for event in source.aiter_sse()
            if event.event == "tick"
        ]


async def test_ticks_are_numbered_from_one_and_resume_after_the_last_id(
    client: httpx.AsyncClient,
) -> None:
    assert await _ticks(client) == [("1", 1), ("2", 2), ("3", 3)]
    assert await _ticks(client, **{"Last-Event-ID": "1"}) == [("2", 2), ("3", 3)]


async def test_resuming_past_the_last_tick_is_204(client: httpx.AsyncClient) -> None:
    response = await client.get(TICKER, params={"count": 3}, headers={"Last-Event-ID": "3"})
    assert response.status_code == 204
    assert response.content == b""


async def test_bad_parameters_are_422_and_an_unknown_handle_is_404(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get(TICKER, params={"interval": 0})).status_code == 422
    too_long = {"Last-Event-ID": "9" * 65}
    assert (await client.get(TICKER, headers=too_long)).status_code == 422
    dropped = await client.post(f"{TICKER}/no-such-handle/drop")
    assert dropped.status_code == 404
    assert dropped.headers["content-type"] == "application/problem+json"
    assert (await client.post(f"{TICKER}/bad handle!/drop")).status_code == 422
