"""Request timeout: a handler that has not started its answer in time is cancelled; 504."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import deadline as request_deadline
from app.core.exceptions import ProblemType
from app.core.logging import get_logger
from app.http.paths import NO_PATHS, Paths
from app.http.problems import problem_response
from app.http.routing import route_template
from app.http.spans import note

log = get_logger(__name__)

TIMEOUTS = Counter(
    "http_request_timeouts_total",
    "Requests cancelled and answered 504 because no response started in time, by route.",
    ["route"],
)


class TimeoutMiddleware:
    """Cancels the request's handler if no response has started within `timeout_seconds`.

    Cancellation is delivered into the handler as `CancelledError` at its current `await`, so
    its `finally` blocks and context managers run before the 504 is sent. Once a response has
    started (a stream, SSE) the timeout is switched off: a started stream is never cut.
    """

    def __init__(self, app: ASGIApp, *, timeout_seconds: float, exempt: Paths = NO_PATHS) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        started = False
        deadline = asyncio.timeout(self.timeout_seconds)
        # The same deadline, for the dependency calls below to read (app/core/deadline.py).
        budget, token = request_deadline.start(self.timeout_seconds)

        try:
            async with deadline:

                async def send_disarming(message: Message) -> None:
                    nonlocal started
                    if message["type"] == "http.response.start":
                        started = True
                        deadline.reschedule(None)
                        budget.disarm()
                    await send(message)

                await self.app(scope, receive, send_disarming)
        except TimeoutError:
            if started or not deadline.expired():
                raise  # the handler's own TimeoutError, not our deadline
            route = route_template(scope)
            TIMEOUTS.labels(route=route).inc()
            note("timed_out", timeout_seconds=self.timeout_seconds)
            log.warning("request_timeout", route=route, timeout_seconds=self.timeout_seconds)
            response = problem_response(
                scope,
                504,
                f"The request did not complete within {self.timeout_seconds:g} s.",
                type_=ProblemType.TIMEOUT,
            )
            await response(scope, receive, send)
        finally:
            # Tasks the request started share its deadline object: once the request is over
            # (answered, timed out or gone), what they still do has no deadline of its own.
            budget.disarm()
            request_deadline.end(token)
