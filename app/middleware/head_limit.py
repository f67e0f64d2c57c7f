"""Request head limit: 431 when the request line and headers together exceed a bound.

Every later layer and handler reads headers (request ids, tokens, ETag lists); bounding their
total size once, here, means none of them ever works on an unbounded header. The server below
(uvicorn with httptools) has parsed the head already: the proxy in front must bound it too.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.http.problems import refuse
from app.http.spans import note

# What a header costs on the wire besides its name and value: ": " and CRLF.
_HEADER_OVERHEAD = 4


def head_bytes(scope: Scope) -> int:
    """The size of the request's target and headers, as sent."""
    size = len(scope.get("raw_path") or scope["path"]) + len(scope.get("query_string", b""))
    for name, value in scope["headers"]:
        size += len(name) + len(value) + _HEADER_OVERHEAD
    return size


class HeadLimitMiddleware:
    """Refuses requests whose head is over `max_bytes`: 431 for HTTP, a refused handshake for
    WebSockets."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or head_bytes(scope) <= self.max_bytes:
            await self.app(scope, receive, send)
            return
        note("head_too_large", limit=self.max_bytes)
        await refuse(
            scope,
            receive,
            send,
            431,
            f"The request line and headers exceed {self.max_bytes} bytes.",
            headers={"Connection": "close"},
        )
