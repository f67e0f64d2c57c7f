"""Threads for one kind of blocking work, with admission control.

A shared thread pool lets one kind of work starve another: 64 slow demo calls once filled the
pool that password hashing needed, and every login timed out. A `BoundedExecutor` gives a kind
of work threads of its own and a bound on what may wait for them: past `workers + queue` tasks
it refuses at once with `Overloaded` (503 + Retry-After), which sheds load instead of letting
requests pile up until they time out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from app.core.exceptions import Overloaded

T = TypeVar("T")


class BoundedExecutor:
    """`workers` threads named `name`, admitting at most `workers + queue` tasks at once."""

    def __init__(self, name: str, *, workers: int, queue: int) -> None:
        self.name = name
        self.workers = workers
        self.capacity = workers + queue
        self.rejected = 0
        self._in_flight = 0
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    @property
    def in_flight(self) -> int:
        """Tasks admitted and not finished (running or waiting for a thread)."""
        return self._in_flight

    def _release(self) -> None:
        self._in_flight -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a thread of this executor, or raise `Overloaded` at once."""
        if self._in_flight >= self.capacity:
            self.rejected += 1
            raise Overloaded(f"The {self.name} threads are all busy and their queue is full.")
        self._in_flight += 1
        loop = asyncio.get_running_loop()
        future = self._threads.submit(fn, *args)
        # Released when the thread is really done, even if the caller stopped waiting earlier:
        # a bcrypt call cannot be interrupted, so its place stays taken until it ends.
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(future)

    def stats(self) -> dict[str, int]:
        """Threads, tasks in flight, capacity and refusals (for health)."""
        return {
            "workers": self.workers,
            "in_flight": self._in_flight,
            "capacity": self.capacity,
            "rejected": self.rejected,
        }

    def shutdown(self) -> None:
        """Cancel waiting tasks; running ones finish (not waited on)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
