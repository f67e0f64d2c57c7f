"""GZip in the real chain: large JSON is compressed, event streams never are."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from fastapi.responses import StreamingResponse


async def test_large_json_is_gzipped_and_event_streams_are_not(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def events() -> AsyncIterator[str]:
        for i in range(3):
            yield f"id: {i}\ndata: {'x' * 2000}\n\n"

    @app.get("/test-sse")
    async def sse() -> StreamingResponse:
        return StreamingResponse(events(), media_type="text/event-stream")

    for i in range(30):
        await client.post(
            "/api/v1/users",
            json={"email": f"gz{i}@example.com", "name": "G" * 50, "password": "password123"},
        )
    listed = await client.get("/api/v1/users?limit=30", headers={"Accept-Encoding": "gzip"})
    assert listed.headers["content-encoding"] == "gzip"
    assert len(listed.json()["items"]) == 30
    stream = await client.get("/test-sse", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in stream.headers
    assert stream.text.count("data: ") == 3
