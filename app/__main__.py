"""`python -m app` (or the `resilient-api` command): validate the settings, then serve with
uvicorn as the settings say.

This is the one place that knows how the server is started (`make run`, the tests and the
container all use it), so uvicorn's own options cannot drift from the app's settings. Settings
come from `APP_*` environment variables and `.env`, never from flags: one source of truth for
the container, Kubernetes and a laptop alike.
"""

from __future__ import annotations

import argparse
import gc
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from types import FrameType

import uvicorn
from fastapi import FastAPI

from app import __version__
from app.core.config import Settings, get_settings
from app.core.exceptions import SettingsError
from app.core.lifecycle import Lifecycle
from app.core.logging import get_logger
from app.http_protocol import head_timeout_protocol
from app.probe_listener import ProbeListener

log = get_logger("app.server")


MIN_GRACE_SECONDS = 0.2
YOUNG_GC_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Once the app has started: freeze what lives as long as the process, and collect the
    young generation less often (docs/benchmarks.md, "Where the tail came from")."""
    # Everything built so far (modules, the app, its services, the caches' first entries)
    # lives as long as the process. Frozen, the collector stops re-scanning it: every full
    # collection walked all of it, which stalled requests under load.
    gc.collect()
    gc.freeze()
    # A young-generation collection every 700 allocations (the default) ran every couple of
    # requests at 64 connections; every 10,000 it runs a tenth as often. The older
    # generations keep their thresholds.
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


class DrainingServer(uvicorn.Server):
    """uvicorn, plus a drain period on SIGTERM.

    uvicorn stops accepting connections the moment it is asked to exit, so a load balancer
    still sending traffic would see refused connections. Here SIGTERM first turns readiness
    off and tells streams to end, keeps serving for `drain_seconds` while the endpoint is taken
    out of rotation, and only then lets uvicorn's graceful shutdown begin. SIGINT (Ctrl+C) skips
    the drain (keeping a 0.2 s grace for closing WebSockets properly); a second signal goes
    straight to uvicorn.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        lifecycle: Lifecycle,
        drain_seconds: float,
        probe_port: int | None = None,
        on_started: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(config)
        self.on_started = on_started
        self.lifecycle = lifecycle
        self.drain_seconds = drain_seconds
        self.probe_port = probe_port
        self.probes: ProbeListener | None = None
        self._drain_until: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.probe_port is not None and not self.should_exit:
            # The kubelet's own door: answered from a thread, whatever the event loop is doing.
            self.probes = ProbeListener(
                self.config.loaded_app,
                self.lifecycle,
                self.config.host,
                self.probe_port,
                app_state=lambda: self.lifespan.state,
            )
            self.probes.start()
        tune_garbage_collector()
        if self.started and self.on_started is not None:
            self.on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: only set flags here; on_tick acts on them in the event loop.
        if self._drain_until is None:
            self._captured_signals.append(sig)  # re-raised by uvicorn once it has stopped
            drain = self.drain_seconds if sig == signal.SIGTERM else 0.0
            # Even without a drain, one extra tick lets the app close WebSockets with 1001
            # and end event streams before uvicorn closes them its own way.
            self._drain_until = time.monotonic() + max(drain, MIN_GRACE_SECONDS)
            return
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets=sockets)
        if self.probes is not None:
            await self.probes.stop()

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None or self.should_exit:
            if not self.lifecycle.shutting_down:
                log.info("draining", seconds=self.drain_seconds if self._drain_until else 0)
            self.lifecycle.begin_shutdown()
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


AppFactory = Callable[[Settings, Lifecycle], FastAPI]


def default_factory(settings: Settings, lifecycle: Lifecycle) -> FastAPI:
    """The app itself (`app.main.create_app`)."""
    from app.main import create_app  # imported here so a settings error is reported first

    return create_app(settings, lifecycle=lifecycle)


def build_server(
    settings: Settings,
    factory: AppFactory = default_factory,
    *,
    probes: bool = True,
    on_started: Callable[[], object] | None = None,
) -> DrainingServer:
    """The app built from `settings` (with `factory`), in a server configured as the settings
    say; `probes=False` leaves the probe port to another process (one of several workers);
    `on_started` is called once the app has started and the socket is served."""
    # We choose uvicorn's `websockets` implementation on purpose (see ws= below and
    # docs/internals.md, "Realtime"); its deprecation notice would greet every start.
    # Revisit on upgrades.
    warnings.filterwarnings("ignore", message="The `websockets` implementation is deprecated")
    lifecycle = Lifecycle()
    app = factory(settings, lifecycle)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # Logging is configured by the app (structlog); uvicorn must not install its own.
        log_config=None,
        access_log=False,
        # Our ClientIdentifier decides whom to believe from APP_TRUSTED_PROXIES; uvicorn's
        # default would trust X-Forwarded-For from 127.0.0.1 whatever that setting says.
        proxy_headers=False,
        server_header=False,
        # Oversized WebSocket frames are refused by the protocol layer (close 1009) before
        # they are buffered whole; the chat route checks the same limit.
        ws_max_size=settings.ws_max_message_bytes,
        # The websockets implementation answers a malformed handshake (a 10,000-character
        # query, say) with a clear 400; uvicorn's sans-I/O default left such clients hanging.
        ws="websockets",
        # Slow clients: a deadline for each request head, a cap on open connections (503
        # beyond), and idle keep-alive connections closed after 5 s.
        http=head_timeout_protocol(
            settings.head_timeout_seconds,
            settings.max_head_bytes,
            draining=lambda: lifecycle.shutting_down,
        ),
        # The standard library's event loop, not uvloop: under saturation uvloop served 64
        # busy connections unfairly (p99 8-12x the median at the same throughput, some
        # requests waiting half a second), where asyncio's loop kept p99 near the median.
        # Measured in docs/benchmarks.md ("The event loop").
        loop="asyncio",
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        # uvicorn's annotation says int, but it is used as a float number of seconds.
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,  # type: ignore[arg-type]
    )
    return DrainingServer(
        config,
        lifecycle,
        settings.shutdown_drain_seconds,
        probe_port=settings.probe_port if probes else None,
        on_started=on_started,
    )


def serve(settings: Settings, factory: AppFactory = default_factory) -> None:
    """Build the app from `settings` (with `factory`) and run it until it is told to stop:
    in this process, or in `APP_WORKERS` worker processes sharing the port."""
    if settings.workers > 1:
        from app.workers import WorkerSupervisor

        # The default factory is this module's, which a worker (a fresh interpreter) cannot
        # find under `__main__`: the worker uses its own copy.
        given = None if factory is default_factory else factory
        sys.exit(WorkerSupervisor(settings, given).run())
    build_server(settings, factory).run()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resilient-api",
        description=(
            "Serve the Resilient API. Every setting comes from an APP_* environment variable "
            "(or a .env file in the working directory): APP_HOST and APP_PORT choose the "
            "address (default 127.0.0.1:8000). See docs/configuration.md for the full list."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Start the server, or exit with status 2 and one line naming the bad setting."""
    _parser().parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    serve(settings)


if __name__ == "__main__":
    main()
