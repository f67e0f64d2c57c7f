"""Threads for one kind of blocking work, with admission control.

A shared thread pool lets one kind of work starve another: 64 slow demo calls once filled the
pool that password hashing needed, and every login timed out. A `BoundedExecutor` gives a kind
of work threads of its own and a bound on what may wait for them: past `workers + queue` tasks
it refuses at once with `Overloaded` (503 + Retry-After), which sheds load instead of letting
requests pile up until they time out.

With a `dependency`, every task goes through that dependency's pipeline (app/core/dependency.py):
its breaker, its bulkhead (shedding at once, like the queue bound), the request's deadline, and
the faults a drill injects; so a learner can make password hashing slow or fail and watch
sign-ups and logins refused fast while everything else goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from app.core.dependency import Dependency
from app.core.exceptions import Overloaded, ServiceUnavailable
from app.core.faults import InjectedFault

T = TypeVar("T")


class BoundedExecutor:
    """`workers` threads named `name`, admitting at most `workers + queue` tasks at once."""

    def __init__(
        self, name: str, *, workers: int, queue: int, dependency: Dependency | None = None
    ) -> None:
        self.name = name
        self.dependency = dependency
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
        """Run `fn(*args)` in a thread of this executor, or raise `Overloaded` at once (through
        the dependency's pipeline, if there is one)."""
        if self.dependency is None:
            return await self.submit(fn, *args)
        try:
            return await self.dependency.call(
                lambda timeout: asyncio.wait_for(self.submit(fn, *args), timeout)
            )
        except (TimeoutError, InjectedFault):
            # The threads failed (a drill) or are stalled: a 503 the client may retry, never a
            # 500. (A full queue is `Overloaded` already.)
            raise ServiceUnavailable(
                f"The {self.name} threads did not answer in time; retry shortly.",
                headers={"Retry-After": "1"},
            ) from None

    async def submit(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a thread of this executor, outside any pipeline (its probe), or
        raise `Overloaded` at once."""
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
