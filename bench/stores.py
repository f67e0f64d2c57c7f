"""The memory store against the Redis store, in one interleaved run.

Over HTTP (wrk, 64 connections, the app pinned to CPU 0 and wrk to CPU 1, Redis unpinned on the
same machine with AOF `appendfsync always`, as shipped): users GET by id with default settings
(the users cache on), the same with the cache off (every GET reads the store), POST (bcrypt at 4
rounds, so the store's share shows), and a list page of 50 with the cache off. Both servers run
the full chain with the rate limiter on (a quota that never refuses), so the Redis server also
pays its rate-limit script on every request. Then, in this process, list queries against each
repository holding `--users` records (default 100,000).

Usage: .venv/bin/python -m bench.stores [--rounds 3] [--seconds 5] [--users 100000]
Needs wrk and redis-server (Debian packages). Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

from app.memory.repository import MemoryRepository
from app.redis.client import RedisClient
from app.redis.repository import RedisRepository
from app.services.users import _USERS_SPEC
from app.stores.records import Filter, Repository
from bench._server import redis_server, running_server
from bench._wrk import TASKSET, WRK, Round, median_round, wrk

APP_ENV = {
    "APP_LOG_FORMAT": "json",
    "APP_LOG_LEVEL": "INFO",
    "APP_RATE_LIMIT_REQUESTS": "1000000000",
}
POST_SCRIPT = """
local prefix, counter = "x", 0
function init(args) prefix = args[1] end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"email":"%s-%d@example.com","name":"Bench %d","password":"password123"}',
    prefix, counter, counter)
  return wrk.format("POST", "/api/v1/users", {["Content-Type"] = "application/json"}, body)
end
"""
PATHS = {
    "GET by id (cache on)": ("cached", "/api/v1/users/2"),
    "GET by id (cache off)": ("uncached", "/api/v1/users/2"),
    "list limit=50 (cache off)": ("uncached", "/api/v1/users?limit=50&sort=-name"),
    "POST (bcrypt 4 rounds)": ("uncached", "/api/v1/users"),
}


def _seed(base: str, users: int) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        for i in range(users):
            body = {
                "email": f"seed{i}@example.com",
                "name": f"Seed {i:05d}",
                "password": "pw-12345",
            }
            http.post("/api/v1/users", json=body).raise_for_status()


def _http(rounds: int, seconds: int, connections: int, seed: int) -> dict[str, dict[str, Round]]:
    pinned = 0 if TASKSET else None  # the CPU the server is pinned to
    results: dict[str, dict[str, list[Round]]] = {p: {"memory": [], "redis": []} for p in PATHS}
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(POST_SCRIPT)
    with ExitStack() as stack:
        url = stack.enter_context(redis_server(8790, Path(tempfile.mkdtemp())))
        redis_env = {"APP_STORE": "redis", "APP_REDIS_URL": url}
        uncached = {"APP_CACHE_TTL_SECONDS": "0.001"}
        servers: dict[tuple[str, str], str] = {}
        for port, (store, cache) in enumerate(
            [
                ("memory", "cached"),
                ("memory", "uncached"),
                ("redis", "cached"),
                ("redis", "uncached"),
            ]
        ):
            env = {**APP_ENV, **(redis_env if store == "redis" else {})}
            env.update(uncached if cache == "uncached" else {})
            _, base = stack.enter_context(running_server("app", 8780 + port, env, cpu=pinned))
            servers[(store, cache)] = base
        # The two Redis servers share one dataset: seed it once.
        for (store, cache), base in servers.items():
            if store == "memory" or cache == "cached":
                _seed(base, seed)
        for path_name, (cache, path) in PATHS.items():  # warm-up, not counted
            for store in ("memory", "redis"):
                post = path_name.startswith("POST")
                wrk(servers[(store, cache)] + path, 1, connections, script if post else None)
        for i in range(rounds):
            for path_name, (cache, path) in PATHS.items():
                for store in ("memory", "redis"):
                    post = path_name.startswith("POST")
                    args = [f"r{i}{store}{time.monotonic_ns()}"] if post else []
                    result = wrk(
                        servers[(store, cache)] + path,
                        seconds,
                        connections,
                        script if post else None,
                        args,
                    )
                    results[path_name][store].append(result)
                    print(
                        f"round {i + 1} {path_name:27} {store:6}: {result.rps:7.0f} req/s  "
                        f"p50 {result.p50_ms:6.2f}  p99 {result.p99_ms:6.2f}  "
                        f"max {result.max_ms:7.2f} ms",
                        flush=True,
                    )
    return {
        path: {store: median_round(rounds) for store, rounds in by_store.items()}
        for path, by_store in results.items()
    }


async def _fill(repo: Repository, users: int) -> None:
    batch = 500
    for start in range(0, users, batch):
        await asyncio.gather(
            *(
                repo.create("users", {"email": f"u{i}@example.com", "name": f"User {i:06d}"})
                for i in range(start, min(users, start + batch))
            )
        )


async def _time_ms(
    query: Callable[[Repository], Awaitable[object]], repo: Repository, runs: int
) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await query(repo)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


# The memory store keeps a sorted order until the next write: the list right after one pays
# for the sort, the ones after it do not.
_AFTER_WRITE = "limit=50 by -name, the first after a write"


async def _after_write_ms(repo: Repository, runs: int) -> float:
    timings = []
    for run in range(runs):
        await repo.update("users", 1, {"name": f"Renamed {run}"})
        started = time.perf_counter()
        await repo.list("users", sort="-name", limit=50)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def _lists(users: int) -> dict[str, dict[str, float]]:
    directory = Path(tempfile.mkdtemp())
    queries: dict[str, Callable[[Repository], Awaitable[object]]] = {
        "limit=50 by id": lambda r: r.list("users", limit=50),
        "limit=50 by -name": lambda r: r.list("users", sort="-name", limit=50),
        "skip=50000 limit=50 by name": lambda r: r.list(
            "users", sort="name", skip=50_000, limit=50
        ),
        "email filter (unique index)": lambda r: r.list(
            "users", filters=[Filter("email", "ieq", f"U{users // 2}@EXAMPLE.COM")], limit=50
        ),
        "name contains (scan)": lambda r: r.list(
            "users", filters=[Filter("name", "icontains", "99999")], limit=50
        ),
    }
    found: dict[str, dict[str, float]] = {q: {} for q in (*queries, _AFTER_WRITE)}
    with redis_server(8791, directory) as url:
        client = RedisClient(url, timeout_seconds=30, max_connections=64)
        stores: dict[str, Repository] = {
            "memory": MemoryRepository(),
            "redis": RedisRepository(client),
        }
        for store, repo in stores.items():
            repo.declare(_USERS_SPEC)
            started = time.perf_counter()
            await _fill(repo, users)
            print(
                f"{store}: {users} users created in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            for name, query in queries.items():
                found[name][store] = await _time_ms(query, repo, 3 if "scan" in name else 20)
            found[_AFTER_WRITE][store] = await _after_write_ms(repo, 20)
        await client.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1000, help="users created before the HTTP runs")
    parser.add_argument("--users", type=int, default=100_000, help="records for the list queries")
    args = parser.parse_args()
    if not os.path.isabs(WRK) or shutil.which("redis-server") is None:
        raise SystemExit("needs wrk and redis-server: apt-get install wrk redis-server")

    http = _http(args.rounds, args.seconds, args.connections, args.seed)
    lists = asyncio.run(_lists(args.users))

    print()
    header = ("memory req/s", "redis req/s", "redis/memory", "redis p50", "redis p99", "max")
    print(f"{'HTTP, median of rounds':27} " + " ".join(f"{h:>12}" for h in header))
    for path, by_store in http.items():
        memory, redis = by_store["memory"], by_store["redis"]
        print(
            f"{path:27} {memory.rps:12.0f} {redis.rps:12.0f} {redis.rps / memory.rps:12.2f} "
            f"{redis.p50_ms:12.2f} {redis.p99_ms:12.2f} {redis.max_ms:12.2f}"
        )
    print()
    print(f"{f'list at {args.users} users (ms)':32} {'memory':>8} {'redis':>8}")
    for name, timings in lists.items():
        print(f"{name:32} {timings['memory']:8.2f} {timings['redis']:8.2f}")


if __name__ == "__main__":
    main()
