"""Long-lived responses are bounded per client and in time, and the probes answer however full
the server is (the review's N3: 25 addresses x 85 NDJSON streams of ~28 h each took all 2,048
connection slots, and `/live` answered 503, so Kubernetes would have restarted the pod)."""

from __future__ import annotations

import asyncio

import httpx

from tests.live_server import LiveServer
from tests.security.defaults import SHIPPED_BOUNDS
from tests.security.test_memory import rss_mib

SERVER_ENV = {**SHIPPED_BOUNDS, "APP_MAX_CONNECTIONS": "40", "APP_STREAM_MAX_SECONDS": "4"}
NUMBERS = "/api/v1/stream/numbers?count=100000&interval=1"


async def _open_stream(base_url: str, address: str) -> tuple[asyncio.StreamWriter, bytes]:
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=(address, 0))
    writer.write(f"GET {NUMBERS} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    status = await reader.readline()
    return writer, status


async def test_streams_are_capped_per_client_and_the_probes_answer_a_full_server(
    live_server: LiveServer,
) -> None:
    # Five addresses (the loopback range is the test's network) each try nine streams.
    opened: list[asyncio.StreamWriter] = []
    statuses: list[bytes] = []
    for host in range(2, 7):
        for _ in range(9):
            writer, status = await _open_stream(live_server.base_url, f"127.0.0.{host}")
            statuses.append(status.split()[1])
            if status.split()[1] == b"200":
                opened.append(writer)
            else:
                writer.close()
    try:
        # Eight per address; the last one finds the server full (the 41st connection, in the
        # probes' reserve: served a probe, nothing else).
        assert statuses[:-1] == (([b"200"] * 8 + [b"429"]) * 5)[:-1]
        assert statuses[-1] == b"503"
        assert rss_mib(live_server.process.pid) < 300
        async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as client:
            for probe in ("/live", "/ready", "/health"):
                assert (await client.get(probe)).status_code == 200, probe
            # Anything else on a reserve connection is refused.
            assert (await client.get("/api/v1/users/1")).status_code == 503
    finally:
        for writer in opened:
            writer.close()


async def test_a_stream_ends_after_its_lifetime(live_server: LiveServer) -> None:
    async def read(url: str) -> list[str]:
        async with (
            httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as client,
            client.stream("GET", url) as stream,
        ):
            return [line async for line in stream.aiter_lines()]

    # Both at once: each ends after its 4 s.
    numbers, body = await asyncio.gather(
        read(NUMBERS),
        # An idle event stream ends on time too (the client resumes with Last-Event-ID).
        read("/api/v1/events/stream?topic=quiet.*"),
    )
    lines = [line for line in numbers if line]
    # 100,000 lines a second apart would take 28 hours; the stream ends after 4 s instead.
    assert 2 <= len(lines) <= 8
    assert body[0].startswith("retry:")
