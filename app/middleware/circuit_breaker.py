"""The circuit-breaker layer: each route group behind its own breaker, 503 while it fails."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.breaker import BreakerRegistry, CircuitOpenError
from app.core.exceptions import ProblemType
from app.core.problems import problem_response
from app.core.routing import under_prefix
from app.middleware.timeout import DEADLINE_SCOPE_KEY


class CircuitBreakerMiddleware:
    """Puts each route group (a path prefix, one per router) behind its own breaker.

    5xx answers, unhandled exceptions and timeouts (a cancellation at or past the deadline the
    timeout layer set) count as failures; 4xx answers are successes; a 503 with `Retry-After`
    (load shed on purpose) counts as neither. Paths in no group (probes, `/metrics`,
    `/resilience`) pass straight through.
    """

    def __init__(
        self, app: ASGIApp, *, registry: BreakerRegistry, groups: Sequence[tuple[str, str]]
    ) -> None:
        self.app = app
        self.registry = registry
        # Longest prefix first, so /api/v1/demo/flaky wins over /api/v1/demo.
        self.groups = sorted(groups, key=lambda group: len(group[0]), reverse=True)
        for _, name in self.groups:
            registry.get(name)

    def _group(self, path: str) -> str | None:
        for prefix, name in self.groups:
            if under_prefix(path, prefix):
                return name
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self._group(scope["path"]) if scope["type"] == "http" else None
        if name is None:
            await self.app(scope, receive, send)
            return
        breaker = self.registry.get(name)
        try:
            permit = breaker.acquire()
        except CircuitOpenError as exc:
            response = problem_response(
                scope,
                503,
                f"The {name} routes are failing; the circuit breaker is refusing calls. "
                f"Retry in {exc.retry_after} s.",
                type_=ProblemType.CIRCUIT_OPEN,
                headers={"Retry-After": str(exc.retry_after)},
            )
            await response(scope, receive, send)
            return

        status: int | None = None
        declined = False

        async def send_observing(message: Message) -> None:
            nonlocal status, declined
            if message["type"] == "http.response.start":
                status = message["status"]
                # 503 + Retry-After is the server declining work on purpose (load shedding),
                # not failing: counting it would turn a moment of overload into a long outage.
                declined = status == 503 and any(
                    name == b"retry-after" for name, _ in message.get("headers", ())
                )
            await send(message)

        try:
            await self.app(scope, receive, send_observing)
        except asyncio.CancelledError:
            deadline = scope.get(DEADLINE_SCOPE_KEY)
            # The timer may fire a hair before the deadline the timeout layer wrote down.
            timed_out = (
                deadline is not None and asyncio.get_running_loop().time() >= deadline - 0.01
            )
            breaker.record(permit, failure=True if timed_out else None)
            raise
        except Exception:
            breaker.record(permit, failure=True)
            raise
        breaker.record(permit, failure=None if declined else (status is None or status >= 500))
