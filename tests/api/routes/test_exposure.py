"""What production exposes: the API, not the learner's tools, unless told to (in process, the
app and its lifespan running)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.core.config import Settings, load_settings
from app.main import create_app

DEMO_PATHS = (
    "/api/v1/demo/slow",
    "/api/v1/demo/flaky",
    "/api/v1/cpu-intensive",
    "/api/v1/async-demo",
    "/api/v1/demo/cpu-on-loop",
    "/api/v1/admin/faults/{dependency}",
)
HTML = {"Accept": "text/html"}


def _settings(**changes: Any) -> Settings:
    return load_settings().model_copy(update=changes)


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_production_serves_the_api_and_no_console_or_demo_by_default() -> None:
    production = _settings(env="production")
    paths = create_app(production).openapi()["paths"]
    assert not set(DEMO_PATHS) & set(paths)
    assert "/api/v1/users" in paths
    assert "/api/v1/resilience" in paths
    async with _client(production) as client:
        index = await client.get("/", headers=HTML)
        assert index.headers["content-type"] == "application/json"
        assert "console" not in index.json()
        assert "demos" not in index.json()
        assert (await client.get("/api/v1/demo/slow", params={"delay": 0})).status_code == 404
        assert (await client.post("/api/v1/cpu-intensive", json={})).status_code == 404
        # The breakers of unmounted routes are not listed either.
        breakers = {b["name"] for b in (await client.get("/api/v1/resilience")).json()["breakers"]}
        assert not {"flaky", "demos"} & breakers
        assert (await client.get("/docs")).status_code == 200  # docs stay unless turned off


async def test_production_can_serve_the_console_and_demos_but_never_the_fault_routes() -> None:
    opted_in = _settings(env="production", console_enabled=True, demos_enabled=True)
    paths = create_app(opted_in).openapi()["paths"]
    assert {"/api/v1/demo/slow", "/api/v1/demo/flaky", "/api/v1/cpu-intensive"} <= set(paths)
    assert "/api/v1/demo/cpu-on-loop" not in paths  # holds the event loop on purpose
    assert "/api/v1/admin/faults/{dependency}" not in paths
    async with _client(opted_in) as client:
        console = await client.get("/", headers=HTML)
        assert console.headers["content-type"].startswith("text/html")


async def test_the_docs_and_the_openapi_document_can_be_turned_off() -> None:
    async with _client(_settings(docs_enabled=False)) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404, path
        index = (await client.get("/")).json()
        assert "docs" not in index
        assert "openapi" not in index


async def test_development_keeps_every_learning_tool() -> None:
    paths = create_app(load_settings()).openapi()["paths"]
    assert set(DEMO_PATHS) <= set(paths)
    async with _client(load_settings()) as client:
        assert (await client.get("/", headers=HTML)).headers["content-type"].startswith("text/html")
        assert "demos" in (await client.get("/")).json()
