"""The list and write paths over HTTP, at 1,000 and 100,000 users (the memory store, the default).

For each size a snapshot file with that many users is written here and the server starts from
it (`APP_SNAPSHOT_PATH`): registering 100,000 users over HTTP would take minutes of bcrypt.
Then wrk (64 connections, the server pinned to CPU 0 and wrk to CPU 1) drives:

- `GET /api/v1/users?limit=50`: the first page by id, by `-name`, and a page 50,000 deep by
  name, with the users cache off (`APP_CACHE_TTL_SECONDS=0.001`), so every request lists the
  store; and the first page with the cache on (default settings).
- `POST /api/v1/users` with bcrypt at 4 rounds. Hashing is what a registration is for, so the
  report splits the server's CPU time per request into the hash (timed here, same cost factor)
  and everything else.

A list must cost the page, not the collection: at 100,000 users it must answer about as fast as
at 1,000. Usage: .venv/bin/python -m bench.lists [--rounds 3] [--seconds 5] [--sizes 1000 100000]
Needs wrk (Debian package). Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import orjson
from passlib.context import CryptContext

from app.core.clock import utc_now_iso
from app.core.security import PasswordHasher
from app.memory.repository import MemoryRepository
from app.memory.snapshots import FORMAT, FORMAT_VERSION
from app.services.users import _USERS_SPEC, USERS, new_credential_stamp
from bench._server import running_server
from bench._wrk import TASKSET, WRK, Round, median_round, wrk
from bench.stores import POST_SCRIPT

BCRYPT_ROUNDS = 4
CHAIN_ENV = {
    "APP_LOG_FORMAT": "json",
    "APP_LOG_LEVEL": "INFO",
    "APP_RATE_LIMIT_REQUESTS": "1000000000",
    "APP_BCRYPT_ROUNDS": str(BCRYPT_ROUNDS),
}
UNCACHED = {"APP_CACHE_TTL_SECONDS": "0.001"}
LISTS = {
    "limit=50 by id (cache off)": ("uncached", "/api/v1/users?limit=50"),
    "limit=50 by -name (cache off)": ("uncached", "/api/v1/users?limit=50&sort=-name"),
    "skip=50000 by name (cache off)": ("uncached", "/api/v1/users?limit=50&skip=50000&sort=name"),
    "limit=50 by id (cache on)": ("cached", "/api/v1/users?limit=50"),
}
POST = "POST (bcrypt 4 rounds)"


async def _snapshot(users: int) -> bytes:
    """A snapshot holding `users` users, as the app itself would write it."""
    repo = MemoryRepository()
    repo.declare(_USERS_SPEC)
    password_hash = await PasswordHasher(rounds=BCRYPT_ROUNDS).hash("password123")
    now = utc_now_iso()
    for i in range(users):
        await repo.create(
            USERS,
            {
                "email": f"user{i}@example.com",
                "name": f"User {i:06d}",
                "role": "user",
                "is_active": True,
                "password_hash": password_hash,
                "credential_stamp": new_credential_stamp(),
                "created_at": now,
                "updated_at": now,
            },
        )
    document = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "written_at": now,
        "collections": (await repo.export())["collections"],
    }
    return orjson.dumps(document)


def _hash_ms(samples: int = 50) -> float:
    """The mean time of one bcrypt hash at the benchmark's cost factor, on this machine."""
    context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=BCRYPT_ROUNDS)
    started = time.perf_counter()
    for _ in range(samples):
        context.hash("password123")
    return (time.perf_counter() - started) / samples * 1000


def _measure(users: int, rounds: int, seconds: int, connections: int) -> dict[str, Round]:
    directory = Path(tempfile.mkdtemp())
    cached_snapshot, uncached_snapshot = directory / "cached.json", directory / "uncached.json"
    started = time.perf_counter()
    snapshot = asyncio.run(_snapshot(users))
    cached_snapshot.write_bytes(snapshot)
    uncached_snapshot.write_bytes(snapshot)  # a file per server: each locks its own
    print(f"{users} users: snapshot written in {time.perf_counter() - started:.1f} s", flush=True)
    script = directory / "post.lua"
    script.write_text(POST_SCRIPT)
    pinned = 0 if TASKSET else None  # the CPU the server is pinned to
    results: dict[str, list[Round]] = {name: [] for name in (*LISTS, POST)}
    with (
        running_server(
            "app", 8792, {**CHAIN_ENV, "APP_SNAPSHOT_PATH": str(cached_snapshot)}, cpu=pinned
        ) as (_, cached),
        running_server(
            "app",
            8793,
            {**CHAIN_ENV, **UNCACHED, "APP_SNAPSHOT_PATH": str(uncached_snapshot)},
            cpu=pinned,
        ) as (_, uncached),
    ):
        base = {"cached": cached, "uncached": uncached}
        for cache, path in LISTS.values():  # warm-up, not counted
            wrk(base[cache] + path, 1, connections)
        for i in range(rounds):
            for name, (cache, path) in LISTS.items():
                results[name].append(wrk(base[cache] + path, seconds, connections))
            prefix = f"r{i}n{users}t{time.monotonic_ns()}"
            results[POST].append(
                wrk(uncached + "/api/v1/users", seconds, connections, script, [prefix])
            )
            for name in results:
                last = results[name][-1]
                print(
                    f"round {i + 1} {users:>6} users {name:31}: {last.rps:7.0f} req/s  "
                    f"p50 {last.p50_ms:6.2f}  p99 {last.p99_ms:6.2f}  max {last.max_ms:7.2f} ms",
                    flush=True,
                )
    return {name: median_round(found) for name, found in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    args = parser.parse_args()
    if not os.path.isabs(WRK):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    by_size = {n: _measure(n, args.rounds, args.seconds, args.connections) for n in args.sizes}
    hash_ms = _hash_ms()

    print()
    header = "".join(f"{f'{n} users':>26}" for n in args.sizes)
    print(f"{'median of rounds':31}{header}")
    print(f"{'':31}" + "".join(f"{'req/s   p50   p99 ms':>26}" for _ in args.sizes))
    for name in (*LISTS, POST):
        cells = "".join(
            f"{r.rps:>12.0f}{r.p50_ms:>7.2f}{r.p99_ms:>7.2f}"
            for r in (by_size[n][name] for n in args.sizes)
        )
        print(f"{name:31}{cells}")
    print()
    for n in args.sizes:
        for name, found in by_size[n].items():
            print(
                f"median {n} users {name}: {found.rps:.0f} req/s, "
                f"p50 {found.p50_ms:.2f} ms, p99 {found.p99_ms:.2f} ms"
            )
    print()
    print(f"bcrypt at {BCRYPT_ROUNDS} rounds: {hash_ms:.2f} ms per hash on this machine")
    for n in args.sizes:
        per_post = 1000 / by_size[n][POST].rps  # the server is CPU-bound on its one core
        print(
            f"POST at {n} users: {per_post:.2f} ms of server CPU per request, "
            f"of which the hash {hash_ms:.2f} ms and the rest {per_post - hash_ms:.2f} ms"
        )


if __name__ == "__main__":
    main()
