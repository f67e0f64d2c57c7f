"""Realtime routes against a real server with real clients: httpx-sse,
websockets, and raw reads of the event stream."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from httpx_sse import aconnect_sse, connect_sse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.stores.events import parse_event_id
from tests.conftest import ServerFactory
from tests.e2e.helpers import assert_problem
from tests.live_server import LiveServer, start_server

API = "/api/v1"
AUDIT_FILE = "audit.jsonl"


SERVER_ENV = {
    "APP_SSE_HEARTBEAT_SECONDS": "0.5",
    "APP_EVENT_HISTORY_SIZE": "50",
    "APP_AUDIT_LOG_PATH": "{tmp}/" + AUDIT_FILE,
}


def _ws_url(server: LiveServer, room: str, name: str) -> str:
    query = urlencode({"room": room, "name": name})
    return server.base_url.replace("http", "ws") + f"{API}/ws/chat?{query}"


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return frame


async def _closed_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(100):
            await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd.code if closed.value.rcvd else None


def _health(http: httpx.Client) -> dict[str, Any]:
    return {c["name"]: c["detail"] for c in http.get("/health/detailed").json()["checks"]}


def _wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


# --- SSE ---------------------------------------------------------------------------------------


def test_sse_stream_is_whatwg_with_retry_ids_and_json_data(http: httpx.Client) -> None:
    with connect_sse(
        http, "GET", f"{API}/sse/stream", params={"interval": 0.05, "count": 3}
    ) as source:
        response = source.response
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-accel-buffering"] == "no"
        events = list(source.iter_sse())
    assert events[0].retry == 3000
    ticks = [e for e in events if e.event == "tick"]
    assert [e.id for e in ticks] == ["1", "2", "3"]
    assert [json.loads(e.data)["n"] for e in ticks] == [1, 2, 3]


def test_sse_sends_comment_heartbeats_while_idle(http: httpx.Client) -> None:
    lines: list[str] = []
    with http.stream("GET", f"{API}/sse/stream", params={"interval": 1.6, "count": 1}) as response:
        for line in response.iter_lines():
            lines.append(line)
    assert any(line.startswith(":") for line in lines), lines
    assert "event: tick" in lines


@pytest.mark.parametrize(
    "params", [{"interval": 0}, {"interval": 61}, {"count": 0}, {"count": 10**6}]
)
def test_sse_out_of_range_parameters_get_422_stating_the_range(
    http: httpx.Client, params: dict[str, Any]
) -> None:
    problem = assert_problem(http.get(f"{API}/sse/stream", params=params), 422)
    assert any(ch.isdigit() for ch in problem["errors"][0]["msg"])


# --- event bus ---------------------------------------------------------------------------------


def test_publish_returns_202_and_history_lists_it(http: httpx.Client) -> None:
    response = http.post(f"{API}/events", json={"topic": "orders.created", "data": {"n": 1}})
    assert response.status_code == 202
    event = response.json()
    assert set(event) == {"id", "topic", "ts"}
    items = http.get(f"{API}/events", params={"topic": "orders.*", "limit": 5}).json()["items"]
    assert items[-1] == {**event, "data": {"n": 1}}


@pytest.mark.parametrize(
    "body", [{"topic": "Bad Topic"}, {"topic": ""}, {"data": 1}, {"topic": "a", "x": 1}]
)
def test_bad_events_get_422(http: httpx.Client, body: dict[str, Any]) -> None:
    assert_problem(http.post(f"{API}/events", json=body), 422)


async def test_200_sse_clients_all_receive_one_published_event(live_server: LiveServer) -> None:
    ready = asyncio.Event()
    connected = 0

    async with httpx.AsyncClient(
        base_url=live_server.base_url, timeout=30, limits=httpx.Limits(max_connections=250)
    ) as client:

        async def listen() -> dict[str, Any]:
            nonlocal connected
            async with aconnect_sse(
                client, "GET", f"{API}/events/stream", params={"topic": "fanout.*"}
            ) as source:
                iterator = source.aiter_sse()
                first = await iterator.__anext__()  # the retry event: subscribed by now
                assert first.retry == 3000
                connected += 1
                if connected == 200:
                    ready.set()
                async for sse in iterator:
                    if sse.event == "fanout.test":
                        data: dict[str, Any] = json.loads(sse.data)
                        return data
            raise AssertionError("stream ended early")

        listeners = [asyncio.create_task(listen()) for _ in range(200)]
        await asyncio.wait_for(ready.wait(), 30)
        published = (
            await client.post(f"{API}/events", json={"topic": "fanout.test", "data": "hi"})
        ).json()
        received = await asyncio.wait_for(asyncio.gather(*listeners), 30)
    assert all(r["id"] == published["id"] and r["data"] == "hi" for r in received)
    assert len(received) == 200


def test_clients_that_leave_are_unsubscribed(http: httpx.Client, live_server: LiveServer) -> None:
    assert _wait_until(lambda: _health(http)["event_bus"]["subscribers"].get("fanout.*", 0) == 0)
    metrics = http.get("/metrics").text
    sse_clients = next(line for line in metrics.splitlines() if line.startswith("sse_clients "))
    assert float(sse_clients.split()[1]) == 0


def test_reconnect_with_last_event_id_gets_what_was_missed(http: httpx.Client) -> None:
    first = http.post(f"{API}/events", json={"topic": "resume.a", "data": 1}).json()
    http.post(f"{API}/events", json={"topic": "resume.b", "data": 2})
    http.post(f"{API}/events", json={"topic": "resume.c", "data": 3})
    headers = {"Last-Event-ID": str(first["id"])}
    with connect_sse(
        http, "GET", f"{API}/events/stream", params={"topic": "resume.*"}, headers=headers
    ) as source:
        received = []
        for sse in source.iter_sse():
            if sse.data:
                received.append(json.loads(sse.data)["data"])
                assert sse.id == str(json.loads(sse.data)["id"])
            if len(received) == 2:
                break
    assert received == [2, 3]


def test_a_gap_older_than_the_history_is_announced(http: httpx.Client) -> None:
    first = http.post(f"{API}/events", json={"topic": "gap.start", "data": 0}).json()
    second = http.post(f"{API}/events", json={"topic": "gap.next", "data": 0}).json()
    for i in range(60):  # the server keeps 50
        http.post(f"{API}/events", json={"topic": "gap.fill", "data": i})
    headers = {"Last-Event-ID": str(first["id"])}
    with connect_sse(
        http, "GET", f"{API}/events/stream", params={"topic": "gap.*"}, headers=headers
    ) as source:
        for sse in source.iter_sse():
            if sse.event == "gap":
                gap = json.loads(sse.data)
                break
    assert gap["last_event_id"] == first["id"]
    oldest = parse_event_id(gap["oldest_available_id"])
    assert oldest is not None
    assert oldest > parse_event_id(second["id"])  # type: ignore[operator]


async def test_an_sse_client_that_never_reads_is_let_go(live_server: LiveServer) -> None:
    host, port = live_server.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {API}/events/stream?topic=stuck.* HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    # A tiny receive buffer, never read: the server's writes soon have nowhere to go.
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as http:

        async def event_bus() -> dict[str, Any]:
            checks = (await http.get("/health/detailed")).json()["checks"]
            return dict(next(c["detail"] for c in checks if c["name"] == "event_bus"))

        async def stuck_subscribers() -> int:
            return int((await event_bus())["subscribers"].get("stuck.*", 0))

        for _ in range(50):
            if await stuck_subscribers() == 1:
                break
            await asyncio.sleep(0.05)
        assert await stuck_subscribers() == 1
        dropped_before = (await event_bus())["dropped"]
        big = "x" * 15_000  # under the 16 KiB an event may carry
        for _ in range(800):  # ~12 MB: far more than the socket buffers and its 1 MiB queue hold
            response = await http.post(f"{API}/events", json={"topic": "stuck.data", "data": big})
            assert response.status_code == 202
        # Publishing never waited for the stuck reader: its queue overflowed and the oldest
        # events were dropped (a publish that waited for room would have dropped none, and
        # stalled until the reader was let go, seconds after its socket filled).
        assert (await event_bus())["dropped"] > dropped_before
        for _ in range(300):
            if await stuck_subscribers() == 0:
                break
            await asyncio.sleep(0.1)
        assert await stuck_subscribers() == 0
        assert (await http.get("/live")).status_code == 200
    writer.close()
    del reader


@pytest.mark.parametrize("value", ["garbage", "-1", "1.5", "99999999999999-0", "0x10"])
def test_an_id_that_cannot_be_placed_gets_a_gap_then_live_events(
    http: httpx.Client, value: str
) -> None:
    # Browsers resend whatever id they last saw: a refusal (or silence) would stop them for
    # good, so the stream says what it cannot place and goes on live.
    with connect_sse(
        http, "GET", f"{API}/events/stream", params={"topic": "unplaced.*"},
        headers={"Last-Event-ID": value},
    ) as source:  # fmt: skip
        events = source.iter_sse()
        gap = next(e for e in events if e.event in ("gap", "unplaced.live"))
        assert gap.event == "gap"
        assert json.loads(gap.data)["last_event_id"] == value
        published = http.post(f"{API}/events", json={"topic": "unplaced.live", "data": 1}).json()
        live = next(e for e in events if e.event == "unplaced.live")
        assert live.id == published["id"]


def test_a_client_resuming_after_a_restart_of_the_memory_store_is_not_silenced(
    server_factory: ServerFactory,
) -> None:
    first = server_factory()
    with httpx.Client(base_url=first.base_url) as http:
        for i in range(5):
            old = http.post(f"{API}/events", json={"topic": "reboot.x", "data": i}).json()
    first.stop()
    again = server_factory()  # a new process: the memory history is gone, ids go on from now
    with httpx.Client(base_url=again.base_url, timeout=10) as http, connect_sse(
        http, "GET", f"{API}/events/stream", params={"topic": "reboot.*"},
        headers={"Last-Event-ID": old["id"]},
    ) as source:  # fmt: skip
        events = source.iter_sse()
        gap = next(e for e in events if e.event == "gap")
        assert "before this server started" in json.loads(gap.data)["detail"]
        fresh = http.post(f"{API}/events", json={"topic": "reboot.x", "data": "new"}).json()
        assert parse_event_id(fresh["id"]) > parse_event_id(old["id"])  # type: ignore[operator]
        live = next(e for e in events if e.event == "reboot.x")
        assert live.id == fresh["id"]


def test_user_events_are_published_without_secrets_or_emails(http: httpx.Client) -> None:
    with connect_sse(http, "GET", f"{API}/events/stream", params={"topic": "user.*"}) as source:
        iterator = source.iter_sse()
        next(iterator)  # retry: subscribed
        http.post(
            f"{API}/users",
            json={"email": "events@example.com", "name": "E", "password": "password123"},
        )
        for sse in iterator:
            if sse.event == "user.created":
                event = json.loads(sse.data)
                break
    assert event["data"]["name"] == "E"
    assert "events@example.com" not in sse.data  # events are public: no email, no role
    assert "password" not in sse.data
    assert "$2b$" not in sse.data


# --- WebSocket chat ----------------------------------------------------------------------------


async def test_chat_join_broadcast_direct_and_ping(live_server: LiveServer) -> None:
    async with connect(_ws_url(live_server, "lobby", "ann")) as ann:
        async with connect(_ws_url(live_server, "lobby", "bob")) as bob:
            assert await _recv(ann) == {
                "type": "system",
                "event": "join",
                "name": "bob",
                "room": "lobby",
            }
            await bob.send(json.dumps({"type": "message", "text": "hello"}))
            for ws in (ann, bob):  # the sender gets its own broadcast too
                message = await _recv(ws)
                assert (message["type"], message["from"], message["room"], message["text"]) == (
                    "message",
                    "bob",
                    "lobby",
                    "hello",
                )
                assert message["ts"]
            await ann.send(json.dumps({"type": "direct", "to": "bob", "text": "psst"}))
            direct = await _recv(bob)
            assert (direct["type"], direct["from"], direct["text"]) == ("direct", "ann", "psst")
            await ann.send(json.dumps({"type": "ping"}))
            assert (await _recv(ann))["type"] == "pong"
        assert await _recv(ann) == {
            "type": "system",
            "event": "leave",
            "name": "bob",
            "room": "lobby",
        }


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        ("not json", "JSON"),
        ("[1, 2]", "JSON objects"),
        ('{"text": "no type"}', "Missing type"),
        ('{"type": "dance"}', "Unknown type"),
        ('{"type": "message", "text": 5}', "text"),
        ('{"type": "direct", "to": "nobody", "text": "hi"}', "nobody"),
    ],
)
async def test_unusable_frames_get_an_error_and_the_connection_stays(
    live_server: LiveServer, frame: str, needle: str
) -> None:
    # A room per case: a name is released when the server has seen the previous close, which
    # may come a moment after the client's close handshake returns.
    async with connect(_ws_url(live_server, f"errors-{len(frame)}", "eve")) as ws:
        await ws.send(frame)
        error = await _recv(ws)
        assert error["type"] == "error"
        assert needle in error["detail"]
        await ws.send(json.dumps({"type": "ping"}))
        assert (await _recv(ws))["type"] == "pong"


async def test_a_frame_over_the_size_limit_closes_with_1009(live_server: LiveServer) -> None:
    async with connect(_ws_url(live_server, "big", "bo"), max_size=None) as ws:
        await ws.send(json.dumps({"type": "message", "text": "x" * 1_000_000}))
        assert await _closed_code(ws) == 1009


async def test_flooding_closes_with_1008(live_server: LiveServer) -> None:
    async with connect(_ws_url(live_server, "flood", "fl")) as ws:
        for _ in range(100):
            await ws.send(json.dumps({"type": "ping"}))
        assert await _closed_code(ws) == 1008


async def test_a_binary_frame_closes_with_1003(live_server: LiveServer) -> None:
    async with connect(_ws_url(live_server, "bin", "by")) as ws:
        await ws.send(b"\x00\x01")
        assert await _closed_code(ws) == 1003


async def test_a_10000_character_room_name_is_refused_at_the_handshake(
    live_server: LiveServer,
) -> None:
    # Past the protocol's request-line limit: a 4xx answer before the app runs, not a hang.
    host, port = live_server.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET {API}/ws/chat?room={'r' * 10_000}&name=x HTTP/1.1\r\nHost: {host}\r\n"
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.split()[1] in (b"400", b"414"), status_line


@pytest.mark.parametrize(("room", "name"), [("r" * 65, "ok"), ("ok", "bad name!"), ("", "x")])
async def test_bad_room_or_name_is_refused_with_1008(
    live_server: LiveServer, room: str, name: str
) -> None:
    async with connect(_ws_url(live_server, room, name)) as ws:
        assert await _closed_code(ws) == 1008


async def test_a_taken_name_is_refused(live_server: LiveServer) -> None:
    async with (
        connect(_ws_url(live_server, "dup", "same")),
        connect(_ws_url(live_server, "dup", "same")) as second,
    ):
        assert await _closed_code(second) == 1008


async def test_500_clients_that_vanish_leave_no_connections(live_server: LiveServer) -> None:
    clients = [await connect(_ws_url(live_server, f"vanish{i % 10}", f"v{i}")) for i in range(500)]
    async with httpx.AsyncClient(base_url=live_server.base_url) as http:

        async def connections() -> int:
            checks = (await http.get("/health/detailed")).json()["checks"]
            return int(next(c["detail"]["connections"] for c in checks if c["name"] == "chat"))

        assert await connections() >= 500
        for ws in clients:
            ws.transport.abort()  # no close frame: the TCP connection just goes away
        for _ in range(200):
            await asyncio.sleep(0.1)
            if await connections() == 0:
                break
        assert await connections() == 0
        metrics = (await http.get("/metrics")).text
    gauge = next(line for line in metrics.splitlines() if line.startswith("websocket_connections "))
    assert float(gauge.split()[1]) == 0


# --- streaming and async demos ---------------------------------------------------------------------


def test_numbers_stream_is_chunked_ndjson(http: httpx.Client) -> None:
    with http.stream("GET", f"{API}/stream/numbers", params={"count": 5}) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers.get("transfer-encoding") == "chunked"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines == [{"n": n, "square": n * n} for n in range(1, 6)]


def test_async_demo_takes_about_one_delay(http: httpx.Client) -> None:
    body = http.get(f"{API}/async-demo", params={"tasks": 100, "delay": 0.3}).json()
    assert body["sequential_would_take"] == 30.0
    # Waiting one after another would take 30 s; a tenth of that is far beyond any busy machine.
    assert body["elapsed"] < body["sequential_would_take"] / 10


def test_blocking_demo_shows_the_loop_stayed_free(http: httpx.Client) -> None:
    body = http.get(f"{API}/blocking-demo", params={"delay": 0.5}).json()
    # About 50 ticks of 10 ms while the thread slept. Had the call blocked the loop, there would
    # be none, and one tick would be late by the whole 500 ms. A busy machine can make a tick
    # 100-200 ms late (and `loop_stayed_responsive` false), so the test allows anything short of
    # what a blocked loop shows.
    assert body["loop_ticks"] > 5
    assert body["worst_tick_lag_ms"] < 500


def test_audit_log_holds_the_apps_events(http: httpx.Client, live_server: LiveServer) -> None:
    created = http.post(
        f"{API}/users", json={"email": "audited@example.com", "name": "A", "password": "pw-12345"}
    ).json()
    path = live_server.log_path.parent / AUDIT_FILE

    def written() -> bool:
        return path.exists() and any(
            json.loads(line)["topic"] == "user.created"
            and json.loads(line)["data"]["id"] == created["id"]
            for line in path.read_text().splitlines()
        )

    assert _wait_until(written)
    assert all("password" not in line for line in path.read_text().splitlines())


# --- shutdown ------------------------------------------------------------------------------------


async def test_shutdown_closes_websockets_with_1001_and_ends_streams(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server.log")
    try:
        async with (
            connect(_ws_url(server, "bye", "last")) as ws,
            httpx.AsyncClient(base_url=server.base_url, timeout=10) as client,
            aconnect_sse(client, "GET", f"{API}/events/stream") as source,
        ):
            iterator = source.aiter_sse()
            await iterator.__anext__()  # subscribed
            server.process.send_signal(signal.SIGTERM)
            assert await _closed_code(ws) == 1001
            remaining = [sse async for sse in iterator]  # the stream ends by itself
            assert all(sse.event != "error" for sse in remaining)
        assert server.process.wait(15) in (0, -signal.SIGTERM)
        assert "long_lived_connections_closed" in server.log_text()
    finally:
        server.stop()


def test_a_plain_sse_client_gets_exactly_count_ticks_with_ids_from_1(
    http: httpx.Client,
) -> None:
    # The contract: `?count=4` is four `tick` events, ids 1-4, and nothing else dispatched. The
    # console's drop handle is opt-in (`handle=true`), so plain clients never see it.
    with connect_sse(
        http, "GET", f"{API}/sse/stream", params={"interval": 0.05, "count": 4}
    ) as source:
        dispatched = [event for event in source.iter_sse() if event.data]
    assert [(event.event, event.id) for event in dispatched] == [
        ("tick", "1"),
        ("tick", "2"),
        ("tick", "3"),
        ("tick", "4"),
    ]
    with connect_sse(
        http,
        "GET",
        f"{API}/sse/stream",
        params={"interval": 0.05, "count": 1, "handle": "true"},
    ) as source:
        announced = [event for event in source.iter_sse() if event.data]
    assert [event.event for event in announced] == ["stream", "tick"]
    assert json.loads(announced[0].data)["stream"]
