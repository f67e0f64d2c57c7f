"""Breaker transitions on the bus, and the loop-lag monitor: what the console draws."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.core.breaker import BreakerConfig, BreakerRegistry
from app.core.loop_lag import LoopLagMonitor
from app.memory.event_log import MemoryEventLog
from app.services.breaker_events import BreakerEvents
from app.services.events import EventBus
from tests.fakes import FakeClock

CONFIG = BreakerConfig(window_size=4, min_calls=2, failure_rate=0.5, open_seconds=5)


def _fail(registry: BreakerRegistry, name: str, times: int) -> None:
    breaker = registry.get(name)
    for _ in range(times):
        breaker.record(breaker.acquire(), failure=True)


async def test_every_transition_becomes_one_event_in_order(clock: FakeClock) -> None:
    registry = BreakerRegistry(CONFIG, clock=clock)
    bus = EventBus(MemoryEventLog())
    await bus.start()
    events = BreakerEvents(registry, bus)
    events.start()
    _fail(registry, "db", 2)  # closed -> open
    clock.now += 5
    trial = registry.get("db").acquire()  # open -> half_open
    registry.get("db").record(trial, failure=True)  # half_open -> open
    await events.close()
    history = await bus.history("breaker.*")
    assert [(e.topic, e.data["from_state"], e.data["to_state"]) for e in history] == [
        ("breaker.db", "closed", "open"),
        ("breaker.db", "open", "half_open"),
        ("breaker.db", "half_open", "open"),
    ]
    assert history[0].data["failures_in_window"] == 2
    await bus.close()


async def test_a_store_that_fails_never_reaches_the_request_that_tripped_the_breaker() -> None:
    class BrokenBus:
        async def publish(self, topic: str, data: Any) -> None:
            raise ConnectionError("store gone")

    registry = BreakerRegistry(CONFIG)
    events = BreakerEvents(registry, BrokenBus())  # type: ignore[arg-type]
    events.start()
    _fail(registry, "db", 2)  # the transition itself raises nothing
    await events.close()
    assert events.not_published == 1
    assert str(registry.get("db").state) == "open"


async def test_a_listener_that_raises_does_not_break_the_breaker() -> None:
    registry = BreakerRegistry(CONFIG)

    def broken(*_: object) -> None:
        raise RuntimeError("listener bug")

    stop = registry.listen(broken)
    _fail(registry, "db", 2)
    assert str(registry.get("db").state) == "open"
    stop()


async def test_the_lag_monitor_sees_a_loop_held_by_blocking_code() -> None:
    monitor = LoopLagMonitor(interval=0.01, window=0.3)
    monitor.start()
    await asyncio.sleep(0.35)
    quiet = monitor.worst
    time.sleep(1.0)  # noqa: ASYNC251 - holding the loop on purpose
    # The monitor publishes each window's worst when the window ends, and the next window
    # replaces it: watch what it published rather than one reading at a chosen moment.
    seen = 0.0
    for _ in range(200):
        await asyncio.sleep(0.01)
        seen = max(seen, monitor.worst)
        if seen >= 0.9:
            break
    await monitor.stop()
    # Held for a second, a timer is late by about that, however busy the machine. A free
    # loop reads far less, though not a fixed amount less: beside another make test a quiet
    # window read 0.13 s.
    assert seen >= 0.9
    assert quiet < seen / 2
