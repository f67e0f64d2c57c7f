"""TimeoutMiddleware against tiny inline ASGI apps."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from app.core import deadline
from app.http.paths import Paths
from app.middleware.timeout import TimeoutMiddleware


async def test_hanging_handler_is_cancelled_its_cleanup_runs_and_504_is_sent() -> None:
    cleaned_up = asyncio.Event()

    async def hangs(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned_up.set()

    app = TimeoutMiddleware(hangs, timeout_seconds=0.2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await asyncio.wait_for(c.get("/hang"), timeout=5)
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "The request did not complete within 0.2 s."
    assert cleaned_up.is_set()


async def test_a_started_stream_is_not_cut() -> None:
    async def streams(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(5):
            await asyncio.sleep(0.1)
            await send({"type": "http.response.body", "body": str(i).encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    app = TimeoutMiddleware(streams, timeout_seconds=0.15)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/stream")
    assert (response.status_code, response.text) == (200, "01234")


async def test_exempt_paths_are_never_timed_out() -> None:
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0.3)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = TimeoutMiddleware(slow, timeout_seconds=0.1, exempt=Paths(["/ready"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/ready")).status_code == 200
        assert (await c.get("/other")).status_code == 504


async def test_the_handlers_own_timeout_error_is_not_reported_as_ours() -> None:
    async def raises(scope: Scope, receive: Receive, send: Send) -> None:
        raise TimeoutError("upstream timed out")

    app = TimeoutMiddleware(raises, timeout_seconds=5)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with pytest.raises(TimeoutError, match="upstream timed out"):
            await c.get("/x")


async def test_tasks_a_request_started_have_no_deadline_once_it_is_over() -> None:
    seen: list[float | None] = []
    release = asyncio.Event()

    async def later() -> None:
        seen.append(deadline.remaining())  # during the request: its deadline
        await release.wait()
        seen.append(deadline.remaining())  # after it: none

    tasks: list[asyncio.Task[None]] = []

    async def spawns(scope: Scope, receive: Receive, send: Send) -> None:
        tasks.append(asyncio.create_task(later()))
        await asyncio.sleep(0)
        await asyncio.sleep(3600)  # then times out

    app = TimeoutMiddleware(spawns, timeout_seconds=0.2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/x")).status_code == 504
    release.set()
    await tasks[0]
    assert seen[0] is not None
    assert 0 < seen[0] <= 0.2
    assert seen[1] is None
