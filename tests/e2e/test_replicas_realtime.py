"""Realtime across two real app processes on one real redis-server: events, resumption, chat,
cache invalidation and job progress reach every replica; Redis lost mid-stream ends streams
cleanly and closes sockets with "try again"; a soak of 10,000 events loses and repeats none."""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.stores.events import parse_event_id
from tests.conftest import ServerFactory
from tests.depth import scaled
from tests.e2e.helpers import USERS, bearer, login, register, unique_email
from tests.live_server import LiveServer
from tests.redis_server import RedisServer

EVENTS = "/api/v1/events"
HISTORY = 200


def _env(module_redis: RedisServer) -> dict[str, str]:
    return {
        "APP_STORE": "redis",
        "APP_REDIS_URL": module_redis.url,
        "APP_EVENT_HISTORY_SIZE": str(HISTORY),
        # The soak's readers are Python threads on a shared 2-core machine: room enough that a
        # reader's hiccup is not counted as a loss (slow readers lose the oldest, by design).
        "APP_EVENT_QUEUE_SIZE": "4096",
        "APP_PROCESS_POOL_WORKERS": "1",
    }


@pytest.fixture(scope="module")
def replicas(module_redis: RedisServer, server_factory: ServerFactory) -> list[LiveServer]:
    return [server_factory(_env(module_redis)), server_factory(_env(module_redis))]


@pytest.fixture
def clients(replicas: list[LiveServer]) -> Iterator[list[httpx.Client]]:
    pair = [httpx.Client(base_url=s.base_url, timeout=10.0) for s in replicas]
    yield pair
    for client in pair:
        client.close()


class Listener:
    """An SSE client in a thread, collecting events (and gap notices) until stopped."""

    def __init__(self, base_url: str, topic: str, last_event_id: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.gaps: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.ended = threading.Event()
        self._stop = threading.Event()
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
        self._thread = threading.Thread(
            target=self._run, args=(base_url, topic, headers), daemon=True
        )
        self._thread.start()
        assert self.ready.wait(10), "stream did not start"

    def _run(self, base_url: str, topic: str, headers: dict[str, str]) -> None:
        try:
            with (
                httpx.Client(base_url=base_url, timeout=httpx.Timeout(10, read=60)) as http,
                connect_sse(
                    http, "GET", EVENTS + "/stream", params={"topic": topic}, headers=headers
                ) as source,  # fmt: skip
            ):
                for sse in source.iter_sse():
                    self.ready.set()
                    if sse.event == "gap":
                        self.gaps.append(json.loads(sse.data))
                    elif sse.data:
                        self.events.append(json.loads(sse.data))
                    if self._stop.is_set():
                        return
        except httpx.HTTPError:
            pass
        finally:
            self.ready.set()
            self.ended.set()

    def wait_for(self, count: int, seconds: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while len(self.events) < count and time.monotonic() < deadline and not self.ended.is_set():
            time.sleep(0.02)
        return self.events

    def stop(self) -> None:
        self._stop.set()


def _publish(http: httpx.Client, topic: str, data: Any) -> dict[str, Any]:
    response = http.post(EVENTS, json={"topic": topic, "data": data})
    assert response.status_code == 202, response.text
    published: dict[str, Any] = response.json()
    return published


def test_an_event_published_on_a_reaches_a_subscriber_on_b(clients: list[httpx.Client]) -> None:
    a, b = clients
    listener = Listener(str(b.base_url), "cross.*")
    published = _publish(a, "cross.one", {"n": 1})
    received = listener.wait_for(1)
    listener.stop()
    assert [e["id"] for e in received] == [published["id"]]
    assert received[0]["data"] == {"n": 1}


def test_resume_on_b_from_an_id_received_from_a(clients: list[httpx.Client]) -> None:
    a, b = clients
    first = _publish(a, "resume.x", 1)
    later = [_publish(a if i % 2 else b, "resume.x", i) for i in range(2, 6)]
    listener = Listener(str(b.base_url), "resume.*", last_event_id=first["id"])
    received = listener.wait_for(4)
    listener.stop()
    assert [e["id"] for e in received] == [e["id"] for e in later]
    assert listener.gaps == []


def test_a_gap_after_trimming_then_live_events(clients: list[httpx.Client]) -> None:
    a, b = clients
    first = _publish(a, "trim.start", 0)
    for i in range(HISTORY + 10):
        _publish(b, "trim.fill", i)
    listener = Listener(str(a.base_url), "trim.*", last_event_id=first["id"])
    replayed = listener.wait_for(HISTORY)
    assert listener.gaps, "a gap must say events were dropped"
    assert listener.gaps[0]["last_event_id"] == first["id"]
    assert replayed[0]["id"] == listener.gaps[0]["oldest_available_id"]
    live = _publish(b, "trim.live", "after")
    listener.wait_for(HISTORY + 1)
    listener.stop()
    assert listener.events[-1]["id"] == live["id"]


def test_after_both_apps_restart_a_client_resumes(
    replicas: list[LiveServer], module_redis: RedisServer, server_factory: ServerFactory
) -> None:
    with httpx.Client(base_url=replicas[0].base_url) as a:
        seen = _publish(a, "restart.before", 1)
        missed = _publish(a, "restart.before", 2)
    for server in replicas:
        server.stop()
    replicas[:] = [server_factory(_env(module_redis)), server_factory(_env(module_redis))]
    with httpx.Client(base_url=replicas[1].base_url) as b:
        after = _publish(b, "restart.after", 3)
    listener = Listener(replicas[0].base_url, "restart.*", last_event_id=seen["id"])
    received = listener.wait_for(2)
    listener.stop()
    assert [e["id"] for e in received] == [missed["id"], after["id"]]
    assert listener.gaps == []


async def _recv(ws: ClientConnection, kind: str | None = None) -> dict[str, Any]:
    """The next frame (of type `kind`, if given: a join notice that crossed the member's own
    join on the way from the other replica may come first)."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if kind is None or frame.get("type") == kind:
            return frame


def _ws(server: LiveServer, room: str, name: str) -> str:
    return f"ws{server.base_url.removeprefix('http')}/api/v1/ws/chat?room={room}&name={name}"


async def test_a_chat_message_from_a_member_on_a_reaches_a_member_on_b(
    replicas: list[LiveServer],
) -> None:
    a, b = replicas
    async with connect(_ws(a, "across", "ann")) as ann:
        # The handshake is answered before the join is made (a name taken must close with
        # 1008, after accepting), and a frame is read only once its member has joined: a pong
        # says ann is in the room, so bob's join notice will reach her.
        await ann.send(json.dumps({"type": "ping"}))
        await _recv(ann, "pong")
        async with connect(_ws(b, "across", "bob")) as bob:
            joined = await _recv(ann, "system")
            assert (joined["event"], joined["name"]) == ("join", "bob")
            await ann.send(json.dumps({"type": "message", "text": "hello from A"}))
            heard = await _recv(bob, "message")
            assert (heard["from"], heard["text"]) == ("ann", "hello from A")
            assert (await _recv(ann, "message"))["text"] == "hello from A"  # the sender's copy
            await bob.send(json.dumps({"type": "direct", "to": "ann", "text": "psst"}))
            direct = await _recv(ann, "direct")
            assert (direct["type"], direct["from"], direct["text"]) == ("direct", "bob", "psst")
            # The name is taken in the room whichever replica is asked.
            async with connect(_ws(b, "across", "ann")) as twin:
                with pytest.raises(ConnectionClosed) as closed:
                    await twin.recv()
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1008


def test_a_patch_on_a_is_seen_by_a_get_on_b_that_had_it_cached(
    clients: list[httpx.Client],
) -> None:
    # The documented guarantee: the invalidation is on its way to B before A acknowledges, and
    # B applies it as soon as its event loop reads it; a read that lands in that instant may
    # still see the previous version. So: how long after the acknowledgement B can still
    # answer stale, measured 20 times, must stay within a small bound.
    a, b = clients
    email = unique_email("cached")
    user = register(a, email)
    token = bearer(login(a, email, "password123"))
    windows = []
    for i in range(20):
        assert b.get(f"{USERS}/{user['id']}").status_code == 200  # B caches it
        changed = a.patch(f"{USERS}/{user['id']}", json={"name": f"Name {i}"}, headers=token)
        assert changed.status_code == 200
        acknowledged = time.monotonic()
        stale_reads = 0
        while (seen := b.get(f"{USERS}/{user['id']}")).json()["name"] != f"Name {i}":
            stale_reads += 1
            assert stale_reads < 1000, "B kept the stale version"
        windows.append(time.monotonic() - acknowledged)
        assert seen.headers["ETag"] == changed.headers["ETag"]
    # Without the invalidation, B would answer stale until its entry's TTL (30 s) ran out. Most
    # windows are a read or two; a busy machine can stretch one, never to a tenth of the TTL.
    assert statistics.median(windows) < 0.25, windows
    assert max(windows) < 3, windows


def test_scoring_job_progress_reaches_subscribers_on_the_other_replica(
    clients: list[httpx.Client],
) -> None:
    a, b = clients
    listener = Listener(str(b.base_url), "scoring.jobs")
    records = [{"id": str(i), "features": {"x": i}} for i in range(300)]
    accepted = a.post("/api/v1/scoring/jobs", json={"records": records, "weights": {"x": 1}})
    assert accepted.status_code == 202
    job_id = accepted.json()["id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        mine = [e["data"] for e in listener.events if e["data"]["job_id"] == job_id]
        if mine and mine[-1]["status"] == "done":
            break
        time.sleep(0.05)
    listener.stop()
    assert mine[-1] == {"job_id": job_id, "status": "done", "progress": 1.0}
    assert [m["progress"] for m in mine] == sorted(m["progress"] for m in mine)


@pytest.mark.soak
def test_a_soak_of_events_across_two_replicas_loses_none_and_repeats_none(
    clients: list[httpx.Client],
) -> None:
    a, b = clients
    listeners = [Listener(str(a.base_url), "soak.*"), Listener(str(b.base_url), "soak.*")]
    total, publishers = scaled(2_000, 10_000), 4

    def publish(worker: int) -> list[str]:
        ids = []
        with httpx.Client(base_url=str(clients[worker % 2].base_url), timeout=10) as http:
            for i in range(worker, total, publishers):
                ids.append(_publish(http, f"soak.w{worker}", i)["id"])
        return ids

    with ThreadPoolExecutor(publishers) as pool:
        published = [i for ids in pool.map(publish, range(publishers)) for i in ids]
    expected = sorted(published, key=parse_event_id)  # type: ignore[arg-type]
    for listener in listeners:
        received = [e["id"] for e in listener.wait_for(total, seconds=60)]
        listener.stop()
        assert len(received) == total, f"{total - len(received)} lost"
        assert len(set(received)) == total, "duplicates"
        assert received == expected, "every replica delivers in the stream's order"
        assert sorted(e["data"] for e in listener.events) == list(range(total))
        assert listener.gaps == []


def test_redis_lost_mid_stream_ends_streams_and_sockets_then_clients_resume(
    replicas: list[LiveServer], module_redis: RedisServer
) -> None:
    a, b = replicas
    with httpx.Client(base_url=a.base_url) as http:
        before = _publish(http, "fault.x", "before")
    listener = Listener(b.base_url, "fault.*")

    async def socket_closed_code() -> int | None:
        async with connect(_ws(b, "fault-room", "fay")) as ws:
            module_redis.kill()
            try:
                while True:  # frames from before the loss, if any, then the close
                    await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None

    code = asyncio.run(socket_closed_code())
    assert code == 1013  # try again later
    assert listener.ended.wait(10), "the SSE stream must end so EventSource reconnects"
    with httpx.Client(base_url=b.base_url) as http:
        assert http.get("/ready").status_code == 503
        assert http.get("/live").status_code == 200
        assert http.get(EVENTS + "/stream").status_code == 503
    module_redis.start()
    with httpx.Client(base_url=b.base_url) as http:
        for _ in range(100):
            if http.get("/ready").status_code == 200:
                break
            time.sleep(0.1)
        assert http.get("/ready").status_code == 200
    with httpx.Client(base_url=a.base_url) as http:
        for _ in range(100):
            if http.get("/ready").status_code == 200:
                break
            time.sleep(0.1)
        after = _publish(http, "fault.x", "after")
    resumed = Listener(b.base_url, "fault.*", last_event_id=before["id"])
    received = resumed.wait_for(1)
    resumed.stop()
    assert [e["id"] for e in received] == [after["id"]]
    assert resumed.gaps == []
