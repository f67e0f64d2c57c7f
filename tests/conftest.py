"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.types import ASGIApp

from tests.live_server import TEST_ENV, LiveServer, start_server

# In-process apps read the same settings as the live servers.
os.environ.update(TEST_ENV)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real uvicorn server per test module."""
    server = start_server(tmp_path_factory.mktemp("server") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    """An httpx client aimed at the module's live server."""
    with httpx.Client(base_url=live_server.base_url, timeout=10.0) as client:
        yield client


@pytest.fixture
def app() -> FastAPI:
    """A fresh app, for in-process tests (a test may add routes of its own to it)."""
    from app.core.config import load_settings
    from app.main import create_app

    return create_app(load_settings())


@pytest.fixture
async def started(app: FastAPI) -> AsyncIterator[ASGIApp]:
    """`app` with its lifespan running: the ASGI callable that hands requests its state."""
    async with LifespanManager(app) as manager:
        yield manager.app


@pytest.fixture
async def client(started: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling the started in-process app through ASGI."""
    transport = httpx.ASGITransport(app=started)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
