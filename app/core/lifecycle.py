"""The app's lifecycle state: started, draining, stopped; what readiness and streams watch."""

from __future__ import annotations

import asyncio

from app.core.logging import get_logger

log = get_logger(__name__)


class Lifecycle:
    """Readiness flags and the shutdown signal long-lived streams wait on.

    Created with the app (not in the lifespan) so the server can reach it from its signal
    handling before the lifespan's shutdown half runs.
    """

    def __init__(self) -> None:
        self.started = False
        self.drained = False
        self._shutting_down = asyncio.Event()

    @property
    def shutting_down(self) -> bool:
        """True from the moment shutdown begins (SIGTERM), before connections are drained."""
        return self._shutting_down.is_set()

    @property
    def ready(self) -> bool:
        """Start-up finished, no drain was asked for, and shutdown has not begun."""
        return self.started and not self.drained and not self.shutting_down

    def mark_started(self) -> None:
        """Called by the lifespan once everything is up."""
        self.started = True

    def set_drained(self, drained: bool) -> None:
        """Turn readiness off (or back on) while the process keeps serving: what a replica
        looks like to Kubernetes during a rollout, without stopping it."""
        if drained != self.drained:
            log.warning("readiness_drain_changed", drained=drained)
        self.drained = drained

    def begin_shutdown(self) -> None:
        """Turn readiness off and wake every stream waiting in `wait_for_shutdown`. Idempotent."""
        if not self._shutting_down.is_set():
            log.info("shutdown_begun")
            self._shutting_down.set()

    async def wait_for_shutdown(self) -> None:
        """Return once shutdown has begun (streams race this against their next event)."""
        await self._shutting_down.wait()
