"""A dependency the app calls over the network, and the one pipeline every call to it takes.

The pipeline, in the order a call meets it:
1. **Circuit breaker**, owned by the dependency (not by a route group): while it is open,
   calls fail at once, without touching the dependency. Only failures of the dependency count
   (`is_failure`); a cancelled call counts as nothing.
2. **Bulkhead**: at most `max_in_flight` calls at once. One more waits for a slot at most
   `max_wait_seconds`, then fails: a healthy dependency frees slots in microseconds, so a
   burst only queues briefly, while a stalled one holds at most `max_in_flight` of the
   process's tasks, and everything past that fails fast instead of queueing behind it.
3. **Recovery probe**: when the breaker opens, a background task calls `probe` (a cheap health
   call such as Redis `PING`) with exponential backoff, and turns the breaker half-open the
   moment the dependency answers, instead of waiting the breaker's whole open period. The
   trial calls then close it. So recovery takes as long as the dependency does, not 30 s.

The caller's own deadline and error mapping stay with the caller (`RedisClient.call`); the
refusal is the caller's exception too (`refuse`), so this module knows no web framework and no
store.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge

from app.core.breaker import BreakerRegistry, BreakerState, CircuitBreaker, CircuitOpenError
from app.core.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

DEPENDENCY_CALLS = Counter(
    "dependency_calls_total",
    "Calls to each dependency by outcome: success, failure (the dependency failed), error (it "
    "answered with an error that is not an outage), rejected_open (its breaker refused), "
    "rejected_full (its bulkhead was full).",
    ["dependency", "outcome"],
)
DEPENDENCY_IN_FLIGHT = Gauge(
    "dependency_in_flight",
    "Calls to each dependency running now (its bulkhead's use).",
    ["dependency"],
    multiprocess_mode="livesum",
)
DEPENDENCY_PROBES = Counter(
    "dependency_probes_total",
    "Health probes of a dependency whose breaker is open, by result (ok, failed).",
    ["dependency", "result"],
)

# Makes the exception a refused call raises: (detail, seconds to wait before retrying).
Refuse = Callable[[str, int], Exception]


class Dependency:
    """One named dependency: its bulkhead, its breaker (from `breakers`, named like it, so
    `/resilience` and `circuit_breaker_state` show it) and its recovery probe."""

    def __init__(
        self,
        name: str,
        breakers: BreakerRegistry,
        *,
        max_in_flight: int,
        max_wait_seconds: float = 0.25,
        refuse: Refuse,
        is_failure: Callable[[BaseException], bool],
        probe: Callable[[], Awaitable[object]] | None = None,
        probe_timeout_seconds: float = 1.0,
        probe_backoff_seconds: tuple[float, float] = (0.25, 4.0),
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.name = name
        self.breaker: CircuitBreaker = breakers.get(name)
        self.max_in_flight = max_in_flight
        self.max_wait = max_wait_seconds
        self.in_flight = 0
        self._slots = asyncio.Semaphore(max_in_flight)
        self._refuse = refuse
        self._is_failure = is_failure
        self._probe = probe
        self._probe_timeout = probe_timeout_seconds
        self._first_delay, self._max_delay = probe_backoff_seconds
        self._next_probe_in = self._first_delay
        self._prober: asyncio.Task[None] | None = None
        self._stop_listening = breakers.listen(self._on_transition)
        self._gauge = DEPENDENCY_IN_FLIGHT.labels(dependency=name)
        self._outcomes = {
            outcome: DEPENDENCY_CALLS.labels(dependency=name, outcome=outcome)
            for outcome in ("success", "failure", "error", "rejected_open", "rejected_full")
        }

    async def call(self, run: Callable[[], Awaitable[T]]) -> T:
        """Run one call through the pipeline; `refuse(...)` is raised instead when the
        breaker is open or no bulkhead slot frees up in time."""
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError as exc:
            self._outcomes["rejected_open"].inc()
            raise self._refuse(
                f"{self.name} is failing; its circuit breaker refuses calls until it answers "
                "again.",
                self.retry_after(exc.retry_after),
            ) from None
        if not await self._take_slot():
            self.breaker.record(permit, failure=None)
            self._outcomes["rejected_full"].inc()
            raise self._refuse(
                f"{self.name} is slow: all {self.max_in_flight} calls to it are still "
                "running; retry shortly.",
                1,
            )
        self.in_flight += 1
        self._gauge.inc()
        try:
            result = await run()
        except asyncio.CancelledError:
            self.breaker.record(permit, failure=None)
            raise
        except BaseException as exc:
            failed = self._is_failure(exc)
            self.breaker.record(permit, failure=failed)
            self._outcomes["failure" if failed else "error"].inc()
            raise
        finally:
            self.in_flight -= 1
            self._gauge.dec()
            self._slots.release()
        self.breaker.record(permit, failure=False)
        self._outcomes["success"].inc()
        return result

    async def _take_slot(self) -> bool:
        if not self._slots.locked():
            await self._slots.acquire()  # free: taken without waiting
            return True
        try:
            async with asyncio.timeout(self.max_wait):
                await self._slots.acquire()
        except TimeoutError:
            return False
        return True

    def retry_after(self, breaker_says: int) -> int:
        """Seconds a refused client should wait: until the next probe when one is running
        (recovery may come that soon), else what the breaker says."""
        if self._prober is not None and not self._prober.done():
            return max(1, min(breaker_says, math.ceil(self._next_probe_in)))
        return breaker_says

    def snapshot(self) -> dict[str, Any]:
        """The dependency's state, for `/resilience`."""
        return {
            "name": self.name,
            "breaker": str(self.breaker.state),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "probing": self._prober is not None and not self._prober.done(),
        }

    def _on_transition(
        self, breaker: CircuitBreaker, previous: BreakerState, to: BreakerState
    ) -> None:
        if breaker is not self.breaker or to is not BreakerState.OPEN or self._probe is None:
            return
        if self._prober is None or self._prober.done():
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to probe from
                self._prober = asyncio.get_running_loop().create_task(
                    self._probe_until_it_answers(), name=f"probe-{self.name}"
                )

    async def _probe_until_it_answers(self) -> None:
        assert self._probe is not None
        delay = self._first_delay
        while self.breaker.refusing:
            self._next_probe_in = delay
            await asyncio.sleep(delay)
            if not self.breaker.refusing:
                return  # its open period ended first: trial calls decide now
            task = asyncio.ensure_future(self._probe())
            # Waited on, not cancelled into: a client library may hold on to a cancellation
            # while it reconnects (see RedisClient.call).
            done, _ = await asyncio.wait({task}, timeout=self._probe_timeout)
            if task in done and not task.cancelled() and task.exception() is None:
                DEPENDENCY_PROBES.labels(dependency=self.name, result="ok").inc()
                if self.breaker.half_open_now():
                    log.info("dependency_answered_again", dependency=self.name)
                return
            if not task.done():
                task.cancel()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            DEPENDENCY_PROBES.labels(dependency=self.name, result="failed").inc()
            delay = min(delay * 2, self._max_delay)

    async def close(self) -> None:
        """Stop probing and listening (shutdown)."""
        self._stop_listening()
        task, self._prober = self._prober, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
