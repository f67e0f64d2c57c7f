"""Event-loop lag: how late a timer fires, measured all the time, exported as a gauge.

Anything that holds the event loop (a blocking call, CPU work done inline) delays every timer,
so a sleep of `interval` that takes longer by `lag` means every request waited up to `lag` as
well. The gauge holds the worst lag of the last second; the console's CPU panel draws it, and an
alert on it catches a handler that blocks.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import Gauge

LOOP_LAG = Gauge(
    "event_loop_lag_seconds",
    "Worst event-loop lag over the last second (how late a timer fired).",
    multiprocess_mode="max",
)


class LoopLagMonitor:
    """A task that sleeps `interval` seconds at a time and records how late it woke."""

    def __init__(self, interval: float = 0.05, window: float = 1.0) -> None:
        self.interval = interval
        self.window = window
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start measuring on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._measure())

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        window_start, worst = loop.time(), 0.0
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            now = loop.time()
            worst = max(worst, now - before - self.interval)
            if now - window_start >= self.window:
                self.worst = worst
                LOOP_LAG.set(worst)
                window_start, worst = now, 0.0

    async def stop(self) -> None:
        """Stop measuring."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
