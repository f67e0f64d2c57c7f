"""How fast one published event reaches N SSE clients and N WebSocket clients in one room,
and what each connection costs the server in memory.

For N = 100 and 1,000: connect N clients to a real server (`python -m app`, loopback), read the
server's RSS before and after (memory per connection), then publish 20 events one at a time,
each carrying its send time, and record publish-to-receipt latency at every client (p50/p99).
Client and server share the machine's 2 cores, so the figures include the clients' own work.

Usage: .venv/bin/python -m bench.realtime_delivery [--sizes 100 1000] [--events 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse
from websockets.asyncio.client import ClientConnection, connect

from bench._server import running_server

ROOT = Path(__file__).resolve().parent.parent


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def sse_round(base: str, pid: int, clients: int, events: int) -> tuple[float, float, float]:
    latencies: list[float] = []
    connected = 0
    all_connected = asyncio.Event()
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        before = _rss_kib(pid)

        async def listen() -> None:
            nonlocal connected
            async with aconnect_sse(
                client, "GET", "/api/v1/events/stream", params={"topic": "bench.sse"}
            ) as source:
                iterator = source.aiter_sse()
                await iterator.__anext__()  # retry: subscribed
                connected += 1
                if connected == clients:
                    all_connected.set()
                received = 0
                async for sse in iterator:
                    if sse.event == "bench.sse":
                        latencies.append(time.time() - json.loads(sse.data)["data"]["sent"])
                        received += 1
                        if received == events:
                            return

        tasks = [asyncio.create_task(listen()) for _ in range(clients)]
        await asyncio.wait_for(all_connected.wait(), 120)
        per_connection = (_rss_kib(pid) - before) / clients
        for _ in range(events):
            await client.post(
                "/api/v1/events", json={"topic": "bench.sse", "data": {"sent": time.time()}}
            )
            await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return _pct(latencies, 0.5) * 1000, _pct(latencies, 0.99) * 1000, per_connection


async def ws_round(base: str, pid: int, clients: int, events: int) -> tuple[float, float, float]:
    url = base.replace("http", "ws") + "/api/v1/ws/chat?room=bench&name="
    before = _rss_kib(pid)
    sockets = [await connect(url + f"c{i}", max_queue=None) for i in range(clients)]
    per_connection = (_rss_kib(pid) - before) / clients
    latencies: list[float] = []

    async def receive(ws: ClientConnection) -> None:
        received = 0
        while received < events:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "message":
                latencies.append(time.time() - float(frame["text"]))
                received += 1

    readers = [asyncio.create_task(receive(ws)) for ws in sockets]
    await asyncio.sleep(0.5)  # let the join notices drain
    sender = sockets[0]
    for _ in range(events):
        await sender.send(json.dumps({"type": "message", "text": repr(time.time())}))
        await asyncio.sleep(0.1)  # under the per-connection message rate
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    for ws in sockets:
        await ws.close()
    return _pct(latencies, 0.5) * 1000, _pct(latencies, 0.99) * 1000, per_connection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    with running_server("app", 8768, {"APP_PROCESS_POOL_WORKERS": "1"}) as (server, base):
        print(f"{'transport':10} {'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'KiB/conn':>9}")
        for clients in args.sizes:
            for name, round_ in (("sse", sse_round), ("websocket", ws_round)):
                p50, p99, memory = asyncio.run(round_(base, server.pid, clients, args.events))
                print(f"{name:10} {clients:7d} {p50:8.1f} {p99:8.1f} {memory:9.1f}", flush=True)
                time.sleep(1)


if __name__ == "__main__":
    main()
