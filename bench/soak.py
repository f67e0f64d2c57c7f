"""A mixed-workload soak against a real server on loopback, bounded in time and requests.

Workload, all at once for `--seconds`: CRUD writers (register, read, patch, delete: the store
stays the same size), list readers, event publishers, SSE followers and WebSocket chatters that
stay connected, and scoring requests; plus one deliberate fault per second (`/demo/flaky` at
failure_rate 1, answered 500) so the report shows provoked 5xx apart from real ones.

Reports requests/s, errors by status, p50/p99 per route, and the server's RSS at start, after
warm-up and at the end. Verdict: no 5xx but the provoked ones, and RSS growth under 10% after
warm-up. The test suite runs a 10-second version (tests/e2e/test_soak.py).

Usage: .venv/bin/python -m bench.soak [--seconds 60] [--max-requests 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect

from bench._server import running_server

ROOT = Path(__file__).resolve().parent.parent
PROVOKED = "/api/v1/demo/flaky"


def rss_kib(pid: int) -> int:
    """The resident set size of `pid`, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1])


@dataclass
class SoakReport:
    """What a soak run measured."""

    seconds: float
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    unexpected_5xx: list[str] = field(default_factory=list)
    provoked_5xx: int = 0
    sse_events: int = 0
    ws_messages: int = 0
    rss_start: int = 0
    rss_warm: int = 0
    rss_end: int = 0

    @property
    def rss_growth(self) -> float:
        """RSS growth after warm-up, as a fraction."""
        return (self.rss_end - self.rss_warm) / self.rss_warm if self.rss_warm else 0.0

    @property
    def ok(self) -> bool:
        """No unexpected 5xx and RSS growth under 10% after warm-up."""
        return not self.unexpected_5xx and self.rss_growth < 0.10

    def table(self) -> str:
        """The report as text."""
        lines = [
            f"{self.requests} requests in {self.seconds:.0f} s: "
            f"{self.requests / self.seconds:.0f} req/s; "
            f"SSE events received {self.sse_events}, chat messages received {self.ws_messages}",
            "statuses: " + ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items())),
            f"provoked 5xx: {self.provoked_5xx}; unexpected 5xx: {len(self.unexpected_5xx)}",
            f"{'route':40} {'count':>7} {'p50 ms':>8} {'p99 ms':>8}",
        ]
        for route, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            p50 = ordered[len(ordered) // 2] * 1000
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
            lines.append(f"{route:40} {len(values):7d} {p50:8.1f} {p99:8.1f}")
        lines.append(
            f"server RSS: start {self.rss_start / 1024:.1f} MiB, "
            f"after warm-up {self.rss_warm / 1024:.1f} MiB, "
            f"end {self.rss_end / 1024:.1f} MiB ({self.rss_growth:+.1%} after warm-up)"
        )
        lines.append("verdict: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)


async def soak(
    base_url: str, pid: int, seconds: float, max_requests: int, warmup: float
) -> SoakReport:
    """Drive the mixed workload against `base_url` for `seconds`."""
    report = SoakReport(seconds=seconds)
    report.rss_start = rss_kib(pid)
    deadline = time.monotonic() + seconds
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=100)

    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:

        async def call(route: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
            if report.requests >= max_requests:
                stop.set()
                return None
            report.requests += 1
            start = time.perf_counter()
            response = await client.request(method, url, **kwargs)
            report.latencies[route].append(time.perf_counter() - start)
            report.statuses[response.status_code] += 1
            if response.status_code >= 500:
                if route == PROVOKED:
                    report.provoked_5xx += 1
                else:
                    report.unexpected_5xx.append(
                        f"{method} {url} -> {response.status_code}: {response.text[:200]}"
                    )
            return response

        def running() -> bool:
            return time.monotonic() < deadline and not stop.is_set()

        async def crud(worker: int) -> None:
            n = 0
            while running():
                n += 1
                email = f"soak-{worker}-{n}@example.com"
                created = await call(
                    "POST /users",
                    "POST",
                    "/api/v1/users",
                    json={"email": email, "name": "Soak", "password": "password123"},
                )
                if created is None or created.status_code != 201:
                    continue
                user_id = created.json()["id"]
                token = await call(
                    "POST /auth/token",
                    "POST",
                    "/api/v1/auth/token",
                    data={"username": email, "password": "password123"},
                )
                if token is None:
                    return
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                await call("GET /users/{id}", "GET", f"/api/v1/users/{user_id}")
                await call(
                    "PATCH /users/{id}",
                    "PATCH",
                    f"/api/v1/users/{user_id}",
                    json={"name": "Soaked"},
                    headers=headers,
                )
                await call(
                    "DELETE /users/{id}", "DELETE", f"/api/v1/users/{user_id}", headers=headers
                )

        async def reader() -> None:
            while running():
                await call(
                    "GET /users",
                    "GET",
                    "/api/v1/users",
                    params={"limit": 20, "sort": random.choice(["id", "-name"])},
                )

        async def publisher() -> None:
            while running():
                await call(
                    "POST /events",
                    "POST",
                    "/api/v1/events",
                    json={"topic": "soak.tick", "data": {"t": time.time()}},
                )
                await asyncio.sleep(0.05)

        async def scorer() -> None:
            records = [
                {"id": str(i), "features": {"a": random.random(), "b": random.random()}}
                for i in range(500)
            ]
            while running():
                await call(
                    "POST /scoring",
                    "POST",
                    "/api/v1/scoring",
                    json={"records": records, "weights": {"a": 1, "b": 2}},
                )

        async def faults() -> None:
            while running():
                await call(PROVOKED, "GET", PROVOKED, params={"failure_rate": 1})
                await asyncio.sleep(1)

        async def sse_follower() -> None:
            async with aconnect_sse(
                client, "GET", "/api/v1/events/stream", params={"topic": "soak.*"}
            ) as source:
                async for sse in source.aiter_sse():
                    if sse.event == "soak.tick":
                        report.sse_events += 1
                    if not running():
                        return

        async def chatter(n: int) -> None:
            url = (
                base_url.replace("http", "ws")
                + "/api/v1/ws/chat?"
                + urlencode({"room": "soak", "name": f"c{n}"})
            )
            async with connect(url) as ws:

                async def listen() -> None:
                    async for frame in ws:
                        if json.loads(frame).get("type") == "message":
                            report.ws_messages += 1

                listener = asyncio.create_task(listen())
                while running():
                    await ws.send(json.dumps({"type": "message", "text": "hello"}))
                    await asyncio.sleep(0.5)
                listener.cancel()

        async def warm_mark() -> None:
            await asyncio.sleep(min(warmup, seconds / 2))
            report.rss_warm = rss_kib(pid)

        async def ender() -> None:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            stop.set()

        streams = [asyncio.create_task(sse_follower()) for _ in range(5)]
        streams += [asyncio.create_task(chatter(n)) for n in range(5)]
        workers = [crud(i) for i in range(4)] + [reader() for _ in range(2)]
        workers += [publisher(), scorer(), faults(), warm_mark(), ender()]
        await asyncio.gather(*workers)
        await asyncio.sleep(0.3)
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    report.rss_end = rss_kib(pid)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-requests", type=int, default=200_000)
    args = parser.parse_args()
    with running_server("app", 8769) as (server, base):
        report = asyncio.run(soak(base, server.pid, args.seconds, args.max_requests, warmup=10))
        print(report.table())
        for line in report.unexpected_5xx[:10]:
            print("  unexpected:", line)
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
