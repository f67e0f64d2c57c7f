"""BodyLimitMiddleware against a tiny inline ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.types import Receive, Scope, Send

from app.middleware.body_limit import BodyLimitMiddleware

LIMIT = 1024


class EchoLength:
    """Reads the whole body and answers its length; counts how often it finished reading."""

    def __init__(self) -> None:
        self.completed = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.completed += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def _client(inner: EchoLength) -> httpx.AsyncClient:
    app = BodyLimitMiddleware(inner, max_body_bytes=LIMIT)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_body_within_the_limit_passes() -> None:
    inner = EchoLength()
    async with _client(inner) as client:
        response = await client.post("/", content=b"x" * LIMIT)
    assert (response.status_code, response.text) == (200, str(LIMIT))


async def test_declared_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    inner = EchoLength()
    async with _client(inner) as client:
        response = await client.post("/", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == f"The request body exceeds the limit of {LIMIT} bytes."
    assert inner.completed == 0


async def test_chunked_body_over_the_limit_is_refused_while_reading() -> None:
    inner = EchoLength()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 300

    async with _client(inner) as client:
        response = await client.post("/", content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["status"] == 413
    assert inner.completed == 0


async def test_websocket_and_lifespan_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    app = BodyLimitMiddleware(inner, max_body_bytes=LIMIT)
    await app({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    await app({"type": "websocket", "headers": []}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan", "websocket"]
