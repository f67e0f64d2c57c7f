"""RFC 9457 problem details: the one builder of error responses.

Every error answer the app sends, from a route, a handler or a middleware layer, is built by
`problem_response` with a `type` from `ProblemType` (`app/core/exceptions.py`), so a client can
rely on one shape and one vocabulary. The builder needs only Starlette: middleware uses it below
the FastAPI layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from app.core.exceptions import ProblemType
from app.core.tracing import current_trace_id

PROBLEM_MEDIA_TYPE = "application/problem+json"
REQUEST_ID_SCOPE_KEY = "request_id"


def request_id_of(scope: Scope) -> str | None:
    """The request id that `RequestContextMiddleware` assigned to this request."""
    request_id = scope.get(REQUEST_ID_SCOPE_KEY)
    return request_id if isinstance(request_id, str) else None


def problem_response(
    scope: Scope,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: ProblemType = ProblemType.BLANK,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """Build an RFC 9457 problem response for the request in `scope`."""
    body: dict[str, Any] = {
        "type": str(type_),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": scope.get("path", ""),
        "request_id": request_id_of(scope),
    }
    if extra:
        body.update(extra)
    if status >= 500 and (trace_id := current_trace_id()) is not None:
        # With tracing on: a server error names its trace, so a bug report finds it.
        body["trace_id"] = trace_id
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


async def refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Refuse a request before the app sees it: a problem answer over HTTP, a refused
    handshake for a WebSocket (closing before accepting makes the server answer 403)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await problem_response(scope, status, detail, headers=headers)(scope, receive, send)


def internal_error_response(scope: Scope, exc: BaseException, *, show_detail: bool) -> Response:
    """The 500 answer for an unhandled exception: exception text only in development."""
    detail = (
        f"{type(exc).__name__}: {exc}"
        if show_detail
        else "An unexpected error occurred. Quote the request_id when reporting it."
    )
    return problem_response(scope, 500, detail)
