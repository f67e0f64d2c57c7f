"""The request's deadline, carried to every dependency call.

The timeout layer starts a `Deadline` for each request (`APP_REQUEST_TIMEOUT_SECONDS`) and puts
it in a context variable, so code far below it (a Redis call, a retry's backoff) can ask how
much time is left without being handed anything. A call gives itself the smaller of its own
timeout and what is left, and is not started at all when too little is left: work the client
will never see the result of is not done.

The deadline is an object, not a number, so the timeout layer can disarm it for every task
that copied the context (a stream's tasks) the moment the response starts: a started stream
has no deadline.
"""

from __future__ import annotations

import asyncio
import contextvars

from prometheus_client import Counter

DEADLINE_CUTOFFS = Counter(
    "dependency_deadline_cutoffs_total",
    "Dependency calls not started, or given less than their own timeout and cut short, "
    "because their request's deadline was near.",
    ["dependency"],
)


class Deadline:
    """A point on the event loop's clock by which the request must have its answer."""

    __slots__ = ("at",)

    def __init__(self, seconds: float) -> None:
        self.at: float | None = asyncio.get_running_loop().time() + seconds

    def remaining(self) -> float | None:
        """Seconds left (negative once past), or None when disarmed."""
        if self.at is None:
            return None
        return self.at - asyncio.get_running_loop().time()

    def disarm(self) -> None:
        """No deadline any more (the response has started)."""
        self.at = None


_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "request_deadline", default=None
)


def start(seconds: float) -> tuple[Deadline, contextvars.Token[Deadline | None]]:
    """Start the current request's deadline; hand the token back to `end`."""
    deadline = Deadline(seconds)
    return deadline, _CURRENT.set(deadline)


def end(token: contextvars.Token[Deadline | None]) -> None:
    """Forget the deadline `start` set."""
    _CURRENT.reset(token)


def remaining() -> float | None:
    """Seconds left for the current request, or None outside a request with a deadline."""
    deadline = _CURRENT.get()
    return None if deadline is None else deadline.remaining()
