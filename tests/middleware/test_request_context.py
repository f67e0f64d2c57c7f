"""RequestContextMiddleware against tiny inline ASGI apps."""

from __future__ import annotations

import httpx
import pytest
import structlog
from starlette.types import Receive, Scope, Send

from app.core.logging import configure_logging
from app.http.paths import Paths
from app.middleware.request_context import RequestContextMiddleware


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    # Whatever the app logs while serving carries the request id.
    structlog.get_logger("inner").info("inside", seen_id=scope["request_id"])
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def crashing_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("secret internals")


def _client(app: object, **kwargs: object) -> httpx.AsyncClient:
    wrapped = RequestContextMiddleware(app, **kwargs)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://t")


async def test_valid_incoming_request_id_is_kept() -> None:
    async with _client(ok_app) as client:
        response = await client.get("/", headers={"X-Request-ID": "abc.DEF_123-x"})
    assert response.headers["x-request-id"] == "abc.DEF_123-x"


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "semi;colon", "ünï"])
async def test_invalid_incoming_request_id_is_replaced(bad: str) -> None:
    async with _client(ok_app) as client:
        response = await client.get("/", headers={b"X-Request-ID": bad.encode("utf-8")})
    rid = response.headers["x-request-id"]
    assert rid != bad
    assert len(rid) == 32


async def test_each_request_gets_a_fresh_id() -> None:
    async with _client(ok_app) as client:
        ids = {(await client.get("/")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


async def test_unhandled_error_becomes_a_500_problem_without_internals() -> None:
    async with _client(crashing_app, show_error_detail=False) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["instance"] == "/boom"
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text


async def test_development_mode_shows_the_exception_text() -> None:
    async with _client(crashing_app, show_error_detail=True) as client:
        response = await client.get("/boom")
    assert response.json()["detail"] == "RuntimeError: secret internals"


async def test_access_log_line_has_route_status_and_request_id() -> None:
    # Debug lines must get through, whatever level an earlier test's app configured.
    configure_logging("DEBUG", "json")
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as events:
        async with _client(ok_app, quiet=Paths(["/live"])) as client:
            response = await client.get("/hello", headers={"X-Request-ID": "req-1"})
            await client.get("/live")
    assert response.status_code == 204
    access = [e for e in events if e["event"] == "request"]
    assert len(access) == 2
    assert access[0]["request_id"] == "req-1"
    assert (access[0]["status"], access[0]["path"], access[0]["method"]) == (204, "/hello", "GET")
    assert access[0]["log_level"] == "info"
    assert access[1]["log_level"] == "debug"  # probes log at debug only
    inner = next(e for e in events if e["event"] == "inside")
    assert inner["request_id"] == "req-1"
