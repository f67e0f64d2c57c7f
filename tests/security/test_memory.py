"""Memory a client can make the server hold is bounded, and given back when the client leaves.

RSS figures come from /proc of the real server process (the web process; workers are apart).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx

from tests.live_server import LiveServer
from tests.security.defaults import HELD_LOOP_SECONDS, SHIPPED_BOUNDS, live_loop_lag

SERVER_ENV = {**SHIPPED_BOUNDS, "APP_EVENT_HISTORY_BYTES": "2097152"}
MIB = 1_048_576


def rss_mib(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_oversized_bodies_are_refused_without_being_kept(
    http: httpx.Client, live_server: LiveServer
) -> None:
    before = rss_mib(live_server.process.pid)
    for _ in range(20):
        response = http.post("/api/v1/events", json={"topic": "flood.big", "data": "x" * MIB})
        assert response.status_code == 413
    scoring = http.post(
        "/api/v1/scoring",
        content=b'{"records": [' + b" " * (32 * MIB) + b"]}",
        headers={"Content-Type": "application/json"},
    )
    assert scoring.status_code == 413
    assert rss_mib(live_server.process.pid) - before < 40
    assert live_loop_lag(live_server.base_url) < HELD_LOOP_SECONDS


def test_a_ninth_event_stream_from_one_client_is_refused(live_server: LiveServer) -> None:
    async def scenario() -> int:
        async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as client:
            streams = [
                await client.send(
                    client.build_request("GET", "/api/v1/sse/stream", params={"interval": 5}),
                    stream=True,
                )
                for _ in range(8)
            ]
            assert {s.status_code for s in streams} == {200}
            ninth = await client.get("/api/v1/sse/stream", params={"interval": 5})
            for stream in streams:
                await stream.aclose()
            return ninth.status_code

    assert asyncio.run(scenario()) == 429


async def test_stuck_readers_cost_bounded_memory_returned_when_they_leave(
    live_server: LiveServer,
) -> None:
    pid = live_server.process.pid
    host, port = live_server.base_url.removeprefix("http://").split(":")
    await asyncio.sleep(1)  # let the previous tests' streams wind down
    baseline = rss_mib(pid)
    readers = []
    for _ in range(8):  # the most one client may hold
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(
            f"GET /api/v1/events/stream?topic=heavy.* HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        )
        await writer.drain()
        await reader.readuntil(b"retry:")
        readers.append(writer)
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as client:
        for i in range(600):  # 9 MB of events, never read by anyone
            await client.post(
                "/api/v1/events", json={"topic": "heavy.data", "data": "z" * 15_000 + str(i)}
            )
        peak = rss_mib(pid)
        for writer in readers:
            writer.transport.abort()
        await asyncio.sleep(2)
        after = rss_mib(pid)
        health = (await client.get("/health/detailed")).json()["checks"]
    bus = next(check["detail"] for check in health if check["name"] == "event_bus")
    print(f"RSS MiB: baseline {baseline:.1f}, with 8 stuck readers {peak:.1f}, after {after:.1f}")
    # Each queue holds at most 1 MiB and the history 2 MiB, whatever is published.
    assert peak - baseline < 8 * 1 + 2 + 25
    assert bus["subscribers"].get("heavy.*", 0) == 0
    # What the readers held is given back (the bounded history stays).
    assert after - baseline < 2 + 15
