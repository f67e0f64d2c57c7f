"""`/live` and `/ready` on a port of their own, answered from a thread of their own.

On the main port a probe waits in the event loop's queue like any request: at 2,000 busy
connections that was 1.6-2 s, past the manifests' 2 s probe timeout, so Kubernetes would take
out (or restart) a replica that was only busy. Here (`APP_PROBE_PORT`):

- a small HTTP server runs on a thread, so answering never waits for the event loop;
- the event loop, for its part, beats every `BEAT_SECONDS` and computes readiness every
  `READY_SECONDS` by asking the app itself for `GET /ready` (in process, through the whole
  chain), and leaves the answer where the thread reads it;
- `/live` is 200 while the loop has beaten within `STALL_SECONDS` (a loop that busy is wedged,
  not busy) and 503 after; `/ready` is the loop's last answer while it is fresh, 503 when it is
  older than `STALL_SECONDS` (readiness unknown), and 503 at once when shutdown begins.

The main port's probes stay as they are: this is an extra listener for the kubelet.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from starlette.types import ASGIApp, Message

from app.core.lifecycle import Lifecycle
from app.core.logging import get_logger

log = get_logger("app.probes")

BEAT_SECONDS = 0.25
READY_SECONDS = 1.0
STALL_SECONDS = 10.0
_JSON = "application/json"


class ProbeState:
    """What the event loop last said (written there, read by the probe thread; each field is
    replaced whole, so a reader never sees half an update)."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.beat = time.monotonic()
        self.ready: tuple[int, bytes, float] | None = None  # status, body, when

    def live(self) -> tuple[int, bytes]:
        stalled = time.monotonic() - self.beat
        if stalled > STALL_SECONDS:
            return 503, b'{"status":"stalled","event_loop_silent_seconds":%d}' % int(stalled)
        return 200, b'{"status":"alive"}'

    def readiness(self) -> tuple[int, bytes]:
        if self.lifecycle.shutting_down:
            return 503, b'{"status":"shutting down"}'
        ready = self.ready
        if ready is None or time.monotonic() - ready[2] > STALL_SECONDS:
            return 503, b'{"status":"unknown","detail":"the event loop has not answered lately"}'
        return ready[0], ready[1]


class _Handler(BaseHTTPRequestHandler):
    server: _ProbeServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/live":
            status, body = self.server.state.live()
        elif path == "/ready":
            status, body = self.server.state.readiness()
        else:
            status, body = 404, b'{"status":"not a probe"}'
        self.send_response(status)
        self.send_header("Content-Type", _JSON)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes are not logged (the main port's are not either)."""


class _ProbeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: ProbeState) -> None:
        self.state = state
        super().__init__(address, _Handler)


class ProbeListener:
    """The probe port's server thread, and the event loop's beat that feeds it."""

    def __init__(
        self,
        app: ASGIApp,
        lifecycle: Lifecycle,
        host: str,
        port: int,
        app_state: Callable[[], dict[str, Any]],
    ) -> None:
        self.app = app
        self.app_state = app_state  # what the lifespan yielded (requests get a copy)
        self.state = ProbeState(lifecycle)
        self.host, self.port = host, port
        self._server: _ProbeServer | None = None
        self._thread: threading.Thread | None = None
        self._beat: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Listen (in a thread) and start beating (on the running event loop)."""
        self._server = _ProbeServer((self.host, self.port), self.state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probe-listener", daemon=True
        )
        self._thread.start()
        self._beat = asyncio.get_running_loop().create_task(self._beat_forever(), name="probes")
        log.info("probe_listener_started", port=self.port)

    async def _beat_forever(self) -> None:
        last_ready = 0.0
        while True:
            now = time.monotonic()
            self.state.beat = now
            if now - last_ready >= READY_SECONDS and not self.state.lifecycle.shutting_down:
                last_ready = now
                try:
                    status, body = await asyncio.wait_for(self._ask_ready(), STALL_SECONDS)
                    self.state.ready = (status, body, time.monotonic())
                except Exception:  # the next round asks again; staleness turns it 503
                    log.exception("probe_readiness_failed")
            await asyncio.sleep(BEAT_SECONDS)

    async def _ask_ready(self) -> tuple[int, bytes]:
        """`GET /ready` through the app, in process: the same answer the main port gives."""
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/ready",
            "raw_path": b"/ready",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", self.port),
            "state": self.app_state().copy(),
        }
        status = 500
        chunks: list[bytes] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)

    async def stop(self) -> None:
        """Stop beating and listening."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if self._server is not None:
            server = self._server
            await asyncio.to_thread(server.shutdown)
            server.server_close()
