"""`python -m app`: validate the settings, then serve with uvicorn as the settings say.

This is the one place that knows how the server is started (`make run`, the tests and the
container all use it), so uvicorn's own options cannot drift from the app's settings.
"""

from __future__ import annotations

import signal
import sys
import time
import warnings
from types import FrameType

import uvicorn
from fastapi import FastAPI

from app.core.config import Settings, SettingsError, get_settings
from app.core.lifecycle import Lifecycle
from app.core.logging import get_logger

log = get_logger("app.server")


MIN_GRACE_SECONDS = 0.2


class DrainingServer(uvicorn.Server):
    """uvicorn, plus a drain period on SIGTERM.

    uvicorn stops accepting connections the moment it is asked to exit, so a load balancer
    still sending traffic would see refused connections. Here SIGTERM first turns readiness
    off and tells streams to end, keeps serving for `drain_seconds` while the endpoint is taken
    out of rotation, and only then lets uvicorn's graceful shutdown begin. SIGINT (Ctrl+C) skips
    the drain (keeping a 0.2 s grace for closing WebSockets properly); a second signal goes
    straight to uvicorn.
    """

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_seconds: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_seconds = drain_seconds
        self._drain_until: float | None = None

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

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None or self.should_exit:
            if not self.lifecycle.shutting_down:
                log.info("draining", seconds=self.drain_seconds if self._drain_until else 0)
            self.lifecycle.begin_shutdown()
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


def serve(settings: Settings, app: FastAPI | None = None) -> None:
    """Run `app` (by default the one `app.main` builds) until it is told to stop."""
    # We choose uvicorn's `websockets` implementation on purpose (see ws= below and
    # ARCHITECTURE.md); its deprecation notice would greet every start. Revisit on upgrades.
    warnings.filterwarnings("ignore", message="The `websockets` implementation is deprecated")
    if app is None:
        from app.main import app  # imported here so a settings error is reported first

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
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
    )
    DrainingServer(config, app.state.lifecycle, settings.shutdown_drain_seconds).run()


def main() -> None:
    """Start the server, or exit with status 2 and one line naming the bad setting."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    serve(settings)


if __name__ == "__main__":
    main()
