"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.types import ASGIApp

from tests.fakes import FakeClock
from tests.live_server import TEST_ENV, LiveServer, start_server
from tests.redis_server import REDIS_SERVER, RedisServer

# Files reach the xdist workers longest first (tests/scheduling.py).
pytest_plugins = ["tests.scheduling"]

# In-process apps read the same settings as the live servers.
os.environ.update(TEST_ENV)


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand."""
    return FakeClock()


def _own_redis(
    tmp_path_factory: pytest.TempPathFactory, password: str | None = None
) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server not installed (Debian package redis-server); CI installs it")
    server = RedisServer(tmp_path_factory.mktemp("redis"), password=password)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server per test process, shared by the tests that need Redis (tests
    that kill Redis start their own)."""
    yield from _own_redis(tmp_path_factory)


@pytest.fixture(scope="module")
def module_redis(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    """A redis-server of the module's own, for modules that kill it or restart apps around it
    (with the module's `REDIS_PASSWORD`, if it sets one)."""
    yield from _own_redis(tmp_path_factory, getattr(request.module, "REDIS_PASSWORD", None))


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared redis-server's URL, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Starts real servers (`python -m app`) with settings of the caller's choosing; each is
    stopped when the module's tests are done. `{tmp}` in a setting is the server's folder."""
    servers: list[LiveServer] = []

    def start(env: Mapping[str, str] | None = None) -> LiveServer:
        folder = tmp_path_factory.mktemp("server")
        settings = {name: value.format(tmp=folder) for name, value in (env or {}).items()}
        server = start_server(folder / "server.log", settings)
        servers.append(server)
        return server

    yield start
    for server in servers:  # all at once: each takes a moment to shut down
        server.terminate()
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def live_server(request: pytest.FixtureRequest, server_factory: ServerFactory) -> LiveServer:
    """One real server per test module, with the module's `SERVER_ENV` settings if it has any."""
    return server_factory(getattr(request.module, "SERVER_ENV", None))


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
