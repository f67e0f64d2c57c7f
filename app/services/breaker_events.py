"""Circuit breaker transitions, published on the event bus as `breaker.<name>` events.

A breaker changes state inside a request (synchronously), so the publish runs as a task of its
own: the request that tripped the breaker never waits on the bus. Transitions are rare (a
breaker stays open for `open_seconds`), but the number of publishes in flight is still bounded:
past it a transition is logged and counted, not queued. `breaker.` is a reserved topic, so what
a subscriber sees under it always comes from the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from app.core.breaker import BreakerRegistry, BreakerState, CircuitBreaker
from app.core.clock import utc_now_iso
from app.core.logging import get_logger
from app.services.events import EventBus

log = get_logger(__name__)

TOPIC_ROOT = "breaker"
MAX_IN_FLIGHT = 64


class BreakerEvents:
    """Publishes every transition of every breaker in `registry` on `bus`."""

    def __init__(self, registry: BreakerRegistry, bus: EventBus) -> None:
        self._registry = registry
        self._bus = bus
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stop_listening: Callable[[], None] | None = None
        self.not_published = 0

    def start(self) -> None:
        """Start listening (from the event loop that serves requests)."""
        if self._stop_listening is None:
            self._stop_listening = self._registry.listen(self._on_transition)

    def _on_transition(
        self, breaker: CircuitBreaker, previous: BreakerState, to: BreakerState
    ) -> None:
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            self.not_published += 1
            log.warning("breaker_event_not_published", breaker=breaker.name, reason="backlog")
            return
        data = {
            "breaker": breaker.name,
            "from_state": str(previous),
            "to_state": str(to),
            "at": utc_now_iso(),
            **{k: v for k, v in breaker.snapshot().items() if k not in ("name", "config")},
        }
        task = asyncio.get_running_loop().create_task(
            self._publish(f"{TOPIC_ROOT}.{breaker.name}", data)
        )
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _publish(self, topic: str, data: dict[str, object]) -> None:
        try:
            await self._bus.publish(topic, data)
        except Exception as exc:  # the store is down: the transition is still logged and counted
            self.not_published += 1
            log.warning("breaker_event_not_published", topic=topic, reason=type(exc).__name__)

    async def close(self) -> None:
        """Stop listening and let the publishes in flight finish (they are bounded by the
        store's timeout)."""
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
