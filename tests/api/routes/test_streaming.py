"""The NDJSON stream's contract, in process: one JSON object per line, as many as asked, and
out-of-range requests refused before anything is sent."""

from __future__ import annotations

import json

import httpx

NUMBERS = "/api/v1/stream/numbers"


async def test_the_stream_sends_count_lines_of_ndjson(client: httpx.AsyncClient) -> None:
    async with client.stream("GET", NUMBERS, params={"count": 5}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) async for line in response.aiter_lines() if line]
    assert lines == [{"n": n, "square": n * n} for n in range(1, 6)]


async def test_out_of_range_counts_and_intervals_are_422(client: httpx.AsyncClient) -> None:
    for params in ({"count": 0}, {"count": 100_001}, {"interval": 2}, {"count": "many"}):
        response = await client.get(NUMBERS, params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"
