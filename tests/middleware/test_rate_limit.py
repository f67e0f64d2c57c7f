"""RateLimitMiddleware against a tiny inline ASGI app."""

from __future__ import annotations

import httpx
from starlette.types import Receive, Scope, Send

from app.http.paths import Paths
from app.memory.rate_limiter import MemoryRateLimiter
from app.middleware.rate_limit import RateLimitMiddleware


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _client(quota: int = 3) -> httpx.AsyncClient:
    app = RateLimitMiddleware(
        ok,
        limiter=MemoryRateLimiter(quota, 60),
        client_key=lambda scope: dict(scope["headers"]).get(b"x-who", b"anon").decode(),
        exempt=Paths(["/live"]),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_fields_count_down_then_429_with_retry_after() -> None:
    async with _client() as client:
        answers = [await client.get("/x") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert [a.headers["ratelimit"].split(";")[1] for a in answers] == ["r=2", "r=1", "r=0", "r=0"]
    refused = answers[-1]
    assert refused.headers["retry-after"] == "20"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/rate-limited"


async def test_exempt_paths_neither_count_nor_carry_fields() -> None:
    async with _client(quota=1) as client:
        for _ in range(5):
            response = await client.get("/live")
            assert response.status_code == 200
            assert "ratelimit" not in response.headers
        assert (await client.get("/x")).status_code == 200


async def test_each_client_key_has_its_own_quota() -> None:
    async with _client(quota=1) as client:
        assert (await client.get("/x", headers={"x-who": "a"})).status_code == 200
        assert (await client.get("/x", headers={"x-who": "a"})).status_code == 429
        assert (await client.get("/x", headers={"x-who": "b"})).status_code == 200
