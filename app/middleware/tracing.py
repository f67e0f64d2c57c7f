"""Tracing (only when tracing is on): one server span per HTTP request, named by its route
template (never the raw path), which every layer, handler and Redis call inside it continues.

Outside the request-context layer, so the access line and every log line of the request carry
its `trace_id`, and a 5xx problem names it. A `traceparent` from the client is continued only
as `APP_TRACE_CONTEXT_FROM` says (trusted proxies' by default): a client that could pick its
trace id and its sampling flag could make the server record and export whatever it likes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.clients import ClientIdentifier
from app.http.routing import route_template


def _carrier(scope: Scope) -> dict[str, str]:
    # Only the two W3C fields are read; a header repeated is taken once, the first time.
    carrier: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in (b"traceparent", b"tracestate"):
            carrier.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return carrier


def trace_context_trust(
    policy: Literal["proxies", "anyone", "nobody"], clients: ClientIdentifier
) -> Callable[[Scope], bool]:
    """Whether a request's `traceparent` is continued, under `APP_TRACE_CONTEXT_FROM`."""
    if policy == "anyone":
        return lambda _: True
    if policy == "nobody":
        return lambda _: False
    return clients.peer_is_trusted_proxy


class TracingMiddleware:
    """Wraps each HTTP request in a server span: `GET /api/v1/users/{user_id}`, with the
    method, route and status; a 5xx marks the span as an error, a 4xx is the client's
    (`app.client_error`), as the HTTP semantic conventions say for servers."""

    def __init__(
        self, app: ASGIApp, *, tracer: Tracer, continue_context: Callable[[Scope], bool]
    ) -> None:
        self.app = app
        self.tracer = tracer
        self.continue_context = continue_context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent = propagate.extract(_carrier(scope)) if self.continue_context(scope) else None
        method = scope["method"]
        status = 500
        with self.tracer.start_as_current_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.scheme": scope.get("scheme", "http")},
            record_exception=True,
            set_status_on_exception=True,
        ) as span:

            async def send_noting(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_noting)
            finally:
                route = route_template(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                    span.set_attribute("error.type", str(status))
                elif status >= 400:
                    span.set_attribute("app.client_error", True)
