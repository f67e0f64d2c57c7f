"""The circuit breaker: a guard around any awaitable (`async with breaker:`), and the registry
of named breakers that the per-router middleware layer (`app/middleware/circuit_breaker.py`) uses.

Semantics:
- closed: calls pass; each result enters a sliding window of the last `window_size` calls.
  Once at least `min_calls` are in the window and the failure share reaches `failure_rate`,
  the breaker opens.
- open: calls are refused at once (not entering the window) until `open_seconds` have passed.
- half-open: up to `half_open_calls` trial calls are let through; one failure reopens the
  breaker, and when all of them have succeeded it closes with an empty window. Calls beyond the
  trials are refused while the trials run.
A result that arrives after the breaker changed state (a slow call started while closed) is
ignored: it describes a period that is over.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any

from prometheus_client import Counter, Gauge

from app.core.exceptions import CircuitOpenError
from app.core.logging import get_logger

log = get_logger(__name__)


class BreakerState(StrEnum):
    """The three states; the gauge has one 0/1 series per state."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BREAKER_STATE = Gauge(
    "circuit_breaker_state",
    "1 for the state each circuit breaker is in, 0 for the others.",
    ["breaker", "state"],
    multiprocess_mode="liveall",
)


def _export_state(name: str, current: BreakerState) -> None:
    for state in BreakerState:
        BREAKER_STATE.labels(breaker=name, state=str(state)).set(1 if state is current else 0)


BREAKER_TRANSITIONS = Counter(
    "circuit_breaker_transitions_total",
    "Circuit breaker state changes.",
    ["breaker", "from_state", "to_state"],
)
BREAKER_REJECTED = Counter(
    "circuit_breaker_rejected_total",
    "Calls refused without running because the breaker was open (or half-open and full).",
    ["breaker"],
)


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """How a breaker judges failure and how long it stays open."""

    window_size: int = 20
    min_calls: int = 10
    failure_rate: float = 0.5
    open_seconds: float = 30.0
    half_open_calls: int = 3

    def __post_init__(self) -> None:
        if not (1 <= self.min_calls <= self.window_size):
            raise ValueError("need 1 <= min_calls <= window_size")
        if not (0 < self.failure_rate <= 1):
            raise ValueError("failure_rate must be in (0, 1]")
        if self.open_seconds <= 0 or self.half_open_calls < 1:
            raise ValueError("open_seconds and half_open_calls must be positive")


# Called after every state change with the breaker, the state it left and the state it entered.
TransitionListener = Callable[["CircuitBreaker", BreakerState, BreakerState], None]


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call; hand it back to `record` with the call's result."""

    generation: int
    trial: bool


def _default_is_failure(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


class CircuitBreaker:
    """One breaker. Not thread-safe: use it from one event loop, as everything here does."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        is_failure: Callable[[BaseException], bool] = _default_is_failure,
        on_transition: TransitionListener | None = None,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._on_transition = on_transition
        self.rejected = 0
        self._clock = clock
        self._is_failure = is_failure
        self._state = BreakerState.CLOSED
        self._window: deque[bool] = deque(maxlen=self.config.window_size)
        self._opened_at = 0.0
        self._generation = 0
        self._trials_running = 0
        self._trial_successes = 0
        # Permits of `async with breaker:` blocks, per task (each task has its own context).
        self._permits: contextvars.ContextVar[tuple[Permit, ...]] = contextvars.ContextVar(
            f"breaker_{name}_permits", default=()
        )
        _export_state(name, self._state)

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose wait is over reports half-open)."""
        self._maybe_half_open()
        return self._state

    def _transition(self, to: BreakerState) -> None:
        previous = self._state
        self._state = to
        self._generation += 1
        self._trials_running = 0
        self._trial_successes = 0
        if to is BreakerState.OPEN:
            self._opened_at = self._clock()
        if to is BreakerState.CLOSED:
            self._window.clear()
        _export_state(self.name, to)
        BREAKER_TRANSITIONS.labels(breaker=self.name, from_state=previous, to_state=to).inc()
        log.warning(
            "circuit_breaker_state_changed",
            breaker=self.name,
            from_state=str(previous),
            to_state=str(to),
            failures=sum(self._window),
            calls=len(self._window),
        )
        if self._on_transition is not None:
            self._on_transition(self, previous, to)

    def _maybe_half_open(self) -> None:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.config.open_seconds
        ):
            self._transition(BreakerState.HALF_OPEN)

    def half_open_now(self) -> bool:
        """Let trial calls through now, before the open period is over: for when something
        outside the breaker (a health probe of the dependency) saw it answer again. True if the
        breaker was open."""
        if self._state is not BreakerState.OPEN:
            return False
        self._transition(BreakerState.HALF_OPEN)
        return True

    @property
    def refusing(self) -> bool:
        """True while open and its wait is not over (half-open lets trials through)."""
        return self.state is BreakerState.OPEN

    def retry_after(self) -> int:
        """Whole seconds until an open breaker turns half-open (at least 1)."""
        if self._state is BreakerState.OPEN:
            remaining = self._opened_at + self.config.open_seconds - self._clock()
            return max(1, math.ceil(remaining))
        return 1

    def acquire(self) -> Permit:
        """A permit for one call, or `CircuitOpenError` if calls are refused now."""
        self._maybe_half_open()
        if self._state is BreakerState.CLOSED:
            return Permit(self._generation, trial=False)
        if (
            self._state is BreakerState.HALF_OPEN
            and self._trials_running + self._trial_successes < self.config.half_open_calls
        ):
            self._trials_running += 1
            return Permit(self._generation, trial=True)
        BREAKER_REJECTED.labels(breaker=self.name).inc()
        self.rejected += 1
        raise CircuitOpenError(self.name, self.retry_after())

    def record(self, permit: Permit, failure: bool | None) -> None:
        """Report a call's result: True failed, False succeeded, None neither (abandoned)."""
        if permit.generation != self._generation:
            return
        if permit.trial:
            self._trials_running -= 1
            if failure:
                self._transition(BreakerState.OPEN)
            elif failure is False:
                self._trial_successes += 1
                if self._trial_successes >= self.config.half_open_calls:
                    self._transition(BreakerState.CLOSED)
            return
        if failure is None:
            return
        self._window.append(failure)
        calls = len(self._window)
        if calls >= self.config.min_calls and sum(self._window) / calls >= self.config.failure_rate:
            self._transition(BreakerState.OPEN)

    def snapshot(self) -> dict[str, Any]:
        """The breaker's state and counts, for `/resilience` and health checks."""
        state = self.state
        calls, failures = len(self._window), sum(self._window)
        return {
            "name": self.name,
            "state": str(state),
            "calls_in_window": calls,
            "failures_in_window": failures,
            "failure_rate": round(failures / calls, 3) if calls else 0.0,
            "rejected": self.rejected,
            "retry_after_seconds": self.retry_after() if state is BreakerState.OPEN else None,
            "config": {
                "window_size": self.config.window_size,
                "min_calls": self.config.min_calls,
                "failure_rate": self.config.failure_rate,
                "open_seconds": self.config.open_seconds,
                "half_open_calls": self.config.half_open_calls,
            },
        }

    async def __aenter__(self) -> CircuitBreaker:
        permit = self.acquire()
        self._permits.set((*self._permits.get(), permit))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        *rest, permit = self._permits.get()
        self._permits.set(tuple(rest))
        if exc is None:
            self.record(permit, failure=False)
        elif isinstance(exc, asyncio.CancelledError):
            self.record(permit, failure=None)
        else:
            self.record(permit, failure=self._is_failure(exc))


# Where the breaker layer leaves a `CallOutcome` for the code below it to fill in.
OUTCOME_SCOPE_KEY = "app.breaker_outcome"


@dataclass(slots=True)
class CallOutcome:
    """What the breaker layer learns about one call: whether a dependency failed in it."""

    dependency_failed: bool = False


def report_dependency_failure(scope: MutableMapping[str, Any]) -> None:
    """Tell the breaker guarding this request that a dependency failed while serving it."""
    outcome = scope.get(OUTCOME_SCOPE_KEY)
    if isinstance(outcome, CallOutcome):
        outcome.dependency_failed = True


class BreakerRegistry:
    """Breakers by name, created on first use with the shared configuration."""

    def __init__(
        self, config: BreakerConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: list[TransitionListener] = []

    def get(self, name: str) -> CircuitBreaker:
        """The breaker called `name`, created if needed."""
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name, self.config, clock=self._clock, on_transition=self._notify
            )
            self._breakers[name] = breaker
        return breaker

    def listen(self, listener: TransitionListener) -> Callable[[], None]:
        """Call `listener` after every state change of every breaker; returns the undo."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self, breaker: CircuitBreaker, previous: BreakerState, to: BreakerState) -> None:
        for listener in list(self._listeners):
            try:
                listener(breaker, previous, to)
            except Exception:  # a listener's bug must not break the breaker that called it
                log.exception("breaker_listener_failed", breaker=breaker.name)

    def all(self) -> list[CircuitBreaker]:
        """Every breaker, by name."""
        return [self._breakers[name] for name in sorted(self._breakers)]

    def stats(self) -> dict[str, str]:
        """Each breaker's state, by name."""
        return {breaker.name: str(breaker.state) for breaker in self.all()}

    @property
    def any_open(self) -> bool:
        """True while some breaker refuses calls (open or half-open)."""
        return any(breaker.state is not BreakerState.CLOSED for breaker in self.all())
