"""Events across replicas: publish-to-receipt latency with N SSE subscribers spread over two
app processes on one Redis, and what each subscriber costs its replica in memory.

Starts redis-server and two servers (`python -m app` with `APP_STORE=redis`, loopback), opens N
event streams (half on each replica), reads each replica's RSS before and after (memory per
subscriber), then publishes `--events` events one at a time, alternately on either replica,
each carrying its send time, and records the latency at every subscriber: half of them on the
replica that did not publish the event. Everything shares the machine's 2 cores, the clients'
own work included. Target: p99 under 250 ms with 1,000 subscribers.

Usage: .venv/bin/python -m bench.realtime_replicas [--subscribers 1000] [--events 20]
Needs redis-server (Debian package). Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

from bench._server import redis_server, running_server
from bench.realtime_delivery import _pct, _rss_kib

TOPIC = "bench.replicas"


async def _measure(
    bases: list[str], pids: list[int], subscribers: int, events: int
) -> tuple[float, float, float, int, int]:
    latencies: list[float] = []
    crossed: list[float] = []
    connected = 0
    all_connected = asyncio.Event()
    limits = httpx.Limits(max_connections=subscribers + 10, max_keepalive_connections=0)
    clients = [httpx.AsyncClient(base_url=b, timeout=120, limits=limits) for b in bases]
    before = [_rss_kib(pid) for pid in pids]

    async def listen(replica: int) -> int:
        nonlocal connected
        received = 0
        async with aconnect_sse(
            clients[replica], "GET", "/api/v1/events/stream", params={"topic": TOPIC}
        ) as source:
            iterator = source.aiter_sse()
            await iterator.__anext__()  # retry: subscribed
            connected += 1
            if connected == subscribers:
                all_connected.set()
            async for sse in iterator:
                if sse.event == TOPIC:
                    data = json.loads(sse.data)["data"]
                    latency = time.time() - data["sent"]
                    latencies.append(latency)
                    if data["on"] != replica:
                        crossed.append(latency)
                    received += 1
                    if received == events:
                        return received
        return received

    tasks = [asyncio.create_task(listen(i % 2)) for i in range(subscribers)]
    await asyncio.wait_for(all_connected.wait(), 300)
    per_subscriber = sum(_rss_kib(p) - b for p, b in zip(pids, before, strict=True)) / subscribers
    for i in range(events):
        on = i % 2
        await clients[on].post(
            "/api/v1/events", json={"topic": TOPIC, "data": {"sent": time.time(), "on": on}}
        )
        await asyncio.sleep(0.1)
    received = await asyncio.wait_for(asyncio.gather(*tasks), 300)
    for client in clients:
        await client.aclose()
    lost = subscribers * events - sum(received)
    return (
        _pct(latencies, 0.5) * 1000,
        _pct(latencies, 0.99) * 1000,
        per_subscriber,
        len(crossed),
        lost,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    with ExitStack() as stack:
        url = stack.enter_context(redis_server(8792, Path(tempfile.mkdtemp())))
        env = {"APP_STORE": "redis", "APP_REDIS_URL": url, "APP_PROCESS_POOL_WORKERS": "1"}
        servers = [stack.enter_context(running_server("app", port, env)) for port in (8793, 8794)]
        bases = [base for _, base in servers]
        pids = [process.pid for process, _ in servers]
        print(
            f"{'subscribers':>11} {'p50 ms':>8} {'p99 ms':>8} {'KiB/subscriber':>15} "
            f"{'cross-replica receipts':>23} {'lost':>5}"
        )
        for subscribers in args.subscribers:
            p50, p99, memory, crossed, lost = asyncio.run(
                _measure(bases, pids, subscribers, args.events)
            )
            print(
                f"{subscribers:11d} {p50:8.1f} {p99:8.1f} {memory:15.1f} {crossed:23d} {lost:5d}",
                flush=True,
            )
            time.sleep(1)


if __name__ == "__main__":
    main()
