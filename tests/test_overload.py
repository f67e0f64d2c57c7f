"""Overload without collapse, through a real server: the probe port answers while the event loop
is held, readiness on it turns 503 as shutdown begins, and connections past the cap wait for a
place instead of turning every request into a 503.

On acf3955, at 3,000 connections over the 2,048 cap, 29,236 of 30,114 requests were answered
503 (uvicorn refused every request once that many connections were open) and the probes took
1.6-2 s at 2,000 connections (`python -m bench.overload` measures both).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from tests.live_server import free_port, start_server

USER = "/api/v1/users/1"


async def _get(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def _status(reader: asyncio.StreamReader) -> bytes:
    line = await asyncio.wait_for(reader.readline(), 30)
    status = line.split()[1]
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    return status


async def test_the_probe_port_answers_while_the_event_loop_is_held(tmp_path: Path) -> None:
    probe_port = free_port()
    server = start_server(
        tmp_path / "server.log",
        {"APP_PROBE_PORT": str(probe_port), "APP_SHUTDOWN_DRAIN_SECONDS": "3"},
    )
    try:
        probes = f"http://127.0.0.1:{probe_port}"
        async with httpx.AsyncClient(timeout=30) as http:
            for path in ("/live", "/ready"):
                answer = await http.get(probes + path)
                assert answer.status_code == 200, (path, answer.text)
            assert (await http.get(probes + "/ready")).json() == {"status": "ready"}
            assert (await http.get(probes + "/other")).status_code == 404

            # Hold the main event loop with the on-loop CPU demo. A `/live` on the main port
            # then waits for the loop; the probe port answers meanwhile.
            holder = asyncio.create_task(
                http.post(
                    server.base_url + "/api/v1/demo/cpu-on-loop", json={"samples": 50_000_000}
                )
            )
            await asyncio.sleep(0.1)  # the demo's request is on its way
            main_live = asyncio.create_task(http.get(server.base_url + "/live"))
            answered_meanwhile = 0
            while not main_live.done():
                live = await http.get(probes + "/live")
                assert live.status_code == 200
                answered_meanwhile += 0 if main_live.done() else 1
            assert (await main_live).status_code == 200
            assert (await holder).status_code == 200
            assert answered_meanwhile >= 1
        # Shutdown: readiness on the probe port says no at once, while the drain goes on.
        server.process.send_signal(signal.SIGTERM)
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(50):
                if (await http.get(probes + "/ready")).status_code == 503:
                    break
                await asyncio.sleep(0.05)
            ready = await http.get(probes + "/ready")
            assert ready.status_code == 503
            assert ready.json() == {"status": "shutting down"}
            assert (await http.get(probes + "/live")).status_code == 200
    finally:
        server.stop()


async def test_a_connection_past_the_cap_waits_for_a_place_and_is_then_served(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "server.log", {"APP_MAX_CONNECTIONS": "3"})
    port = int(server.base_url.rsplit(":", 1)[1])
    opened: list[asyncio.StreamWriter] = []
    try:
        # Three connections are served (kept alive) ...
        admitted = []
        for _ in range(3):
            reader, writer = await _get(port, USER)
            assert await _status(reader) == b"200"
            admitted.append((reader, writer))
            opened.append(writer)
        # ... the next 64 are the probes' reserve: a probe is served, anything else is not ...
        reserve = []
        for _ in range(64):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            reserve.append((reader, writer))
            opened.append(writer)
        probe_reader, probe_writer = reserve[0]
        probe_writer.write(b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert await _status(probe_reader) == b"200"
        other_reader, other_writer = reserve[1]
        other_writer.write(f"GET {USER} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert await _status(other_reader) == b"503"
        await other_reader.read()  # that answer closed its connection: its place is free ...
        filler = await asyncio.open_connection("127.0.0.1", port)  # ... and taken again
        opened.append(filler[1])
        # ... and the one after waits, unread, for a place.
        waiting_reader, waiting_writer = await _get(port, USER)
        opened.append(waiting_writer)
        assert not waiting_reader.at_eof()
        early = asyncio.create_task(waiting_reader.readline())
        await asyncio.sleep(0.3)
        assert not early.done(), "answered while every place was taken"
        # One served connection closes: the waiting one takes its place and is answered.
        admitted[0][1].close()
        line = await asyncio.wait_for(early, 30)
        assert line.split()[1] == b"200"
    finally:
        for writer in opened:
            writer.close()
        server.stop()
