"""Request context: the request id, the access log line, and the last-resort 500."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logging import get_logger
from app.http.asgi import append_headers, get_header
from app.http.paths import NO_PATHS, Paths
from app.http.problems import REQUEST_ID_SCOPE_KEY, internal_error_response
from app.http.routing import route_template

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def _request_id(scope: Scope) -> str:
    incoming = get_header(scope, b"x-request-id")
    if incoming is not None and _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return os.urandom(16).hex()  # 128 random bits, as a UUID4 has, at a fraction of the cost


_NOSNIFF = ("X-Content-Type-Options", "nosniff")


def _prefers_served_by(scope: Scope) -> bool:
    # RFC 7240: `Prefer: served-by` (among other preferences) asks which replica answered.
    prefer = get_header(scope, b"prefer")
    return prefer is not None and "served-by" in prefer.lower()


class RequestContextMiddleware:
    """Gives every request an id, logs one line per request, and answers 500 for crashes.

    The id (an incoming `X-Request-ID` of 1-128 `[A-Za-z0-9._-]`, else a fresh one) is put in
    the scope, in the `X-Request-ID` response header and in the logging context, so every log
    line written while serving the request carries it. An exception that nothing else handled
    is logged with its traceback and answered with a 500 problem, unless the response had
    already started (then the connection is closed by the server).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        show_error_detail: bool = False,
        client_address: Callable[[Scope], str] | None = None,
        quiet: Paths = NO_PATHS,
        served_by: str | None = None,
    ) -> None:
        self.app = app
        self.show_error_detail = show_error_detail
        self.client_address = client_address
        self.quiet = quiet
        # Sent only to a request that asks (`Prefer: served-by`): which replica answered.
        self._served_by = (
            (("X-Served-By", served_by), ("Preference-Applied", "served-by")) if served_by else None
        )
        # Per instance rather than per module: loggers are cached on first use, and an app
        # built after logging was reconfigured must log the new way.
        self.access_log = get_logger("app.access")
        self.error_log = get_logger("app.errors")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
            else:
                await self._serve_http(scope, receive, send, request_id)
        finally:
            structlog.contextvars.reset_contextvars(**bound)

    async def _serve_http(
        self, scope: Scope, receive: Receive, send: Send, request_id: str
    ) -> None:
        status = 500  # what is logged if the app dies before answering
        started = False
        headers: tuple[tuple[str, str], ...] = ((REQUEST_ID_HEADER, request_id), _NOSNIFF)
        if self._served_by is not None and _prefers_served_by(scope):
            headers += self._served_by

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                # nosniff: a browser must never guess a JSON answer is HTML or script.
                append_headers(message, headers)
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            self.error_log.exception("unhandled_error", path=scope.get("path"))
            if started:
                raise
            response = internal_error_response(scope, exc, show_detail=self.show_error_detail)
            await response(scope, receive, send_with_id)
        finally:
            duration_ms = round((time.perf_counter() - start) * 1000, 2)
            path = scope.get("path", "")
            log = self.access_log.debug if path in self.quiet else self.access_log.info
            client = self.client_address(scope) if self.client_address else None
            log(
                "request",
                method=scope.get("method"),
                path=path,
                route=route_template(scope),
                status=status,
                duration_ms=duration_ms,
                client=client,
            )
