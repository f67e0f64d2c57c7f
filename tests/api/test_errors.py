"""In-process checks of error shaping that need routes the real app does not have."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp


async def test_unhandled_exception_is_a_500_problem_without_internals(
    app: FastAPI, started: ASGIApp
) -> None:
    @app.get("/explode")
    async def explode() -> None:
        raise RuntimeError("database password is hunter2")

    transport = httpx.ASGITransport(app=started, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/explode", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["request_id"], body["instance"]) == ("boom-1", "/explode")
    assert "hunter2" not in response.text


async def test_chained_routes_on_one_path_all_appear_in_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/users")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
