"""What each middleware layer costs on its own, in process (no network, no server).

Builds the app with no middleware, with each layer alone, and with the whole chain, calls it
through ASGI a few thousand times per variant (GET of one user, the request the chain overhead
benchmark uses) and prints microseconds per request and each layer's cost over the bare app.
The best of several runs is kept, because on a shared machine noise only ever adds time.

Usage: .venv/bin/python -m bench.chain_layers [--requests 3000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

os.environ.setdefault("APP_ENV", "test")
os.environ.setdefault("APP_BCRYPT_ROUNDS", "4")
os.environ.setdefault("APP_RATE_LIMIT_REQUESTS", "1000000000")
os.environ.setdefault("APP_LOG_LEVEL", "INFO")
os.environ.setdefault("APP_LOG_FORMAT", "json")

from asgi_lifespan import LifespanManager
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message

from app.core.config import load_settings
from app.main import create_app

PATH = "/api/v1/users/1"


def _scope() -> dict[str, object]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _per_request_us(app: ASGIApp, requests: int) -> float:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    start = time.perf_counter()
    for _ in range(requests):
        await app(_scope(), receive, send)
    return (time.perf_counter() - start) / requests * 1e6


def _name(middleware: Middleware) -> str:
    # Every layer of the chain is a class (typed as a factory by Starlette).
    return str(getattr(middleware.cls, "__name__", middleware.cls))


async def _measure(keep: list[str] | None, requests: int, runs: int) -> float:
    app = create_app(load_settings())
    if keep is not None:
        app.user_middleware[:] = [m for m in app.user_middleware if _name(m) in keep]
    async with LifespanManager(app) as manager:
        started = manager.app
        await _per_request_us(started, requests // 5)  # warm-up
        return min([await _per_request_us(started, requests) for _ in range(runs)])


async def main(requests: int, runs: int) -> None:
    names = [_name(m) for m in create_app(load_settings()).user_middleware]
    bare = await _measure([], requests, runs)
    print(f"{'variant':34} {'us/request':>10} {'over bare':>10}")
    print(f"{'no middleware':34} {bare:10.1f} {0:10.1f}")
    for name in names:
        alone = await _measure([name], requests, runs)
        print(f"{name:34} {alone:10.1f} {alone - bare:10.1f}")
    full = await _measure(None, requests, runs)
    print(f"{'full chain':34} {full:10.1f} {full - bare:10.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.runs))
