"""A dependency the app calls over the network, and the one pipeline every call to it takes.

The pipeline, in the order a call meets it:
1. **Circuit breaker**, owned by the dependency (not by a route group): while it is open,
   calls fail at once, without touching the dependency. Only failures of the dependency count
   (`is_failure`); a cancelled call counts as nothing.
2. **Bulkhead**: at most `max_in_flight` calls at once (for Redis, one per pooled connection).
   One more waits for a slot (unless `wait_for_slot` is off: then it is refused at once, for a
   dependency with a queue of its own, such as the password-hashing threads), and the wait
   counts against its timeout: a healthy dependency
   frees slots in microseconds, so a burst only queues briefly, while behind a stalled one the
   call is refused once its time is used up, having held no connection. A stall thus ties up
   at most `max_in_flight` calls to the dependency; what fails the rest fast is the breaker,
   which opens on the first wave of timeouts.
3. **Deadline**: each call gets the smaller of the dependency's own timeout and what is left of
   its request's deadline (`app/core/deadline.py`), and is not started when less than
   `min_call_seconds` is left (`DeadlineExceeded`, 504).
4. **Retry**, for calls the caller marks `idempotent` (reads) only, and only after an error
   the caller says is worth it (`is_retriable`; for Redis a refused or reset connection, never
   a timeout, which a retry would only wait out again): up to `retries` more attempts, each
   after a backoff with full jitter (tenacity's `wait_random_exponential`), never while the
   breaker is open, never past the deadline, and only while the `RetryBudget` has room
   (retries at most 10% of calls, plus a small floor). Writes are never retried here: one
   whose reply was lost may have been applied.
5. **Faults** injected on purpose (`app/core/faults.py`) act here, between the bulkhead and
   the call, so everything above runs as in a real outage.
6. **Recovery probe**: when the breaker opens, a background task calls `probe` (a cheap health
   call such as Redis `PING`) with exponential backoff, and turns the breaker half-open the
   moment the dependency answers, instead of waiting the breaker's whole open period. The
   trial calls then close it. So recovery takes as long as the dependency does, not 30 s.

The call itself and its error mapping stay with the caller (`RedisClient.call`), which is
handed the timeout to keep; the refusal is the caller's exception too (`refuse`), so this
module knows no web framework and no store.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge
from tenacity import RetryCallState, wait_random_exponential

from app.core import deadline
from app.core.breaker import BreakerRegistry, BreakerState, CircuitBreaker
from app.core.exceptions import CircuitOpenError, DeadlineExceeded
from app.core.faults import FaultSlot
from app.core.logging import get_logger
from app.core.retry_budget import RetryBudget

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
DEPENDENCY_RETRIES = Counter(
    "dependency_retry_calls_total",
    "Idempotent calls by how retrying went: successful_without_retry, successful_with_retry, "
    "failed_with_retry, failed_without_retry (not retriable, or the breaker or deadline said "
    "no), budget_exhausted (the retry budget had no room).",
    ["dependency", "kind"],
)
DEPENDENCY_RETRY_ATTEMPTS = Counter(
    "dependency_retry_attempts_total",
    "Attempts that were retries (each one), by dependency: with `dependency_calls_total`, how "
    "much the retries added to the load on the dependency.",
    ["dependency"],
)
DEPENDENCY_PROBES = Counter(
    "dependency_probes_total",
    "Health probes of a dependency whose breaker is open, by result (ok, failed).",
    ["dependency", "result"],
)


class _AttemptNumber(RetryCallState):
    """What tenacity's wait strategies read: the number of the attempt that failed."""

    def __init__(self, attempt_number: int) -> None:
        self.attempt_number = attempt_number


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
        timeout_seconds: float = 1.0,
        min_call_seconds: float = 0.005,
        retries: int = 2,
        retry_backoff_seconds: tuple[float, float] = (0.025, 0.25),
        retry_budget: RetryBudget | None = None,
        refuse: Refuse,
        refuse_open: Refuse | None = None,
        is_failure: Callable[[BaseException], bool],
        is_retriable: Callable[[BaseException], bool] | None = None,
        probe: Callable[[], Awaitable[object]] | None = None,
        probe_timeout_seconds: float = 1.0,
        probe_backoff_seconds: tuple[float, float] = (0.25, 4.0),
        wait_for_slot: bool = True,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.name = name
        self.breaker: CircuitBreaker = breakers.get(name)
        self.max_in_flight = max_in_flight
        self.timeout = timeout_seconds
        self.min_call = min_call_seconds
        self.retries = retries
        self.budget = retry_budget or RetryBudget()
        self._backoff = wait_random_exponential(
            multiplier=retry_backoff_seconds[0], max=retry_backoff_seconds[1]
        )
        self.in_flight = 0
        self._slots = asyncio.Semaphore(max_in_flight)
        self._wait_for_slot = wait_for_slot
        self._refuse = refuse
        # What an open breaker's refusal raises; by default the same as a full bulkhead's.
        self._refuse_open = refuse_open or refuse
        self._is_failure = is_failure
        self._is_retriable = is_retriable or is_failure
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
        self._cutoffs = deadline.DEADLINE_CUTOFFS.labels(dependency=name)
        self._retry_attempts = DEPENDENCY_RETRY_ATTEMPTS.labels(dependency=name)
        self.faults = FaultSlot(name)

    def set_probe(self, probe: Callable[[], Awaitable[object]]) -> None:
        """The health call the recovery probe makes (for a dependency built before it)."""
        self._probe = probe

    async def call(self, run: Callable[[float], Awaitable[T]], *, idempotent: bool = False) -> T:
        """Run `run(timeout)` through the pipeline (see the module docstring); it must give
        up after `timeout` seconds. `refuse(...)` is raised instead when the breaker is open
        or no bulkhead slot frees up in time, `DeadlineExceeded` when the request's time is up."""
        if not idempotent:
            return await self._attempt(run)
        self.budget.called()
        try:
            result = await self._attempt(run)
        except Exception as exc:
            if not self._is_retriable(exc):
                if self._is_failure(exc):
                    self._retry_kinds("failed_without_retry")
                raise  # an answer (the same again), or a stall (a retry would wait again)
            return await self._retry(run, exc)
        self._retry_kinds("successful_without_retry")
        return result

    async def _retry(self, run: Callable[[float], Awaitable[T]], first: Exception) -> T:
        last = first
        for attempt in range(1, self.retries + 1):
            pause = self._backoff(_AttemptNumber(attempt))
            left = deadline.remaining()
            if self.breaker.refusing or (left is not None and left - pause < self.min_call):
                break
            if not self.budget.try_spend():
                self._retry_kinds("budget_exhausted")
                raise last
            await asyncio.sleep(pause)
            self._retry_attempts.inc()
            try:
                result = await self._attempt(run)
            except Exception as exc:
                if not self._is_retriable(exc):
                    self._retry_kinds("failed_with_retry")
                    raise
                last = exc
                continue
            self._retry_kinds("successful_with_retry")
            return result
        self._retry_kinds("failed_with_retry" if last is not first else "failed_without_retry")
        raise last

    def _retry_kinds(self, kind: str) -> None:
        DEPENDENCY_RETRIES.labels(dependency=self.name, kind=kind).inc()

    async def _attempt(self, run: Callable[[float], Awaitable[T]]) -> T:
        timeout = self.timeout
        left = deadline.remaining()
        if left is not None and left < timeout:
            if left < self.min_call:
                self._cutoffs.inc()
                raise DeadlineExceeded(
                    f"Too little of the request's time was left to call {self.name}."
                )
            timeout = left
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError as exc:
            self._outcomes["rejected_open"].inc()
            raise self._refuse_open(
                f"{self.name} is failing; its circuit breaker refuses calls until it answers "
                "again.",
                self.retry_after(exc.retry_after),
            ) from None
        waited = await self._take_slot(timeout)
        if waited is None or timeout - waited < self.min_call:
            if waited is not None:
                self._slots.release()
            self.breaker.record(permit, failure=None)
            self._outcomes["rejected_full"].inc()
            raise self._refuse(
                f"{self.name} is slow: all {self.max_in_flight} calls to it are still "
                "running; retry shortly.",
                1,
            )
        timeout -= waited
        self.in_flight += 1
        self._gauge.inc()
        try:
            if self.faults.fault is not None:
                await self.faults.apply(timeout)  # a drill: the real call may not happen
            result = await run(timeout)
        except TimeoutError:
            if timeout < self.timeout:
                # Cut short by the request's deadline, not by the dependency's own timeout:
                # the dependency was not given its chance, so this is not its failure.
                self.breaker.record(permit, failure=None)
                self._cutoffs.inc()
                raise DeadlineExceeded(
                    f"The request's time ran out while waiting for {self.name}."
                ) from None
            self.breaker.record(permit, failure=True)
            self._outcomes["failure"].inc()
            raise
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

    async def _take_slot(self, within_seconds: float) -> float | None:
        """Seconds waited for a bulkhead slot, or None if none freed up in time."""
        if not self._slots.locked():
            await self._slots.acquire()  # free: taken without waiting
            return 0.0
        if not self._wait_for_slot:
            return None  # a bulkhead that sheds at once (the work behind it queues already)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(within_seconds):
                await self._slots.acquire()
        except TimeoutError:
            return None
        return loop.time() - started

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
            "fault": self.faults.snapshot(),
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
            task = asyncio.ensure_future(self._probe_through_faults())
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

    async def _probe_through_faults(self) -> None:
        assert self._probe is not None
        await self.faults.apply(self._probe_timeout)  # an injected outage fails probes too
        await self._probe()

    async def close(self) -> None:
        """Stop probing and listening (shutdown)."""
        self.faults.clear(reason="shutdown")
        self._stop_listening()
        task, self._prober = self._prober, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
