"""Request body limit: 413 without ever holding more than the limit in memory."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.parsing import ascii_int
from app.http.asgi import get_header
from app.http.problems import problem_response
from app.http.routing import under_prefix
from app.http.spans import note


class PayloadTooLarge(HTTPException):
    """A request body over the limit.

    An `HTTPException` rather than an `AppError` because it is raised from inside `receive()`,
    while FastAPI reads the body, and FastAPI re-raises only HTTP exceptions from there.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"The request body exceeds the limit of {limit} bytes.",
            # The rest of the body stays unread, so the connection cannot be reused.
            headers={"Connection": "close"},
        )


class BodyLimitMiddleware:
    """Refuses request bodies over `max_body_bytes` with a 413 problem.

    A declared `Content-Length` over the limit is refused before the app runs. A chunked body
    (no length) is counted as it is received, and the first chunk past the limit raises
    `PayloadTooLarge` inside the app's `receive()`, so the handler never gets the body.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        overrides: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # (path prefix, limit): routes made for big payloads (scoring) get their own limit.
        self.overrides = tuple(overrides)

    def _limit(self, path: str) -> int:
        for prefix, limit in self.overrides:
            if under_prefix(path, prefix):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        declared = get_header(scope, b"content-length")
        declared_bytes = ascii_int(declared, max_digits=20) if declared is not None else None
        if declared_bytes is not None and declared_bytes > limit:
            await self._refuse(scope, receive, send, limit)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    note("body_too_large", limit=limit)
                    raise PayloadTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge:
            # Reached only when no exception handler answered it (a plain ASGI endpoint).
            if started:
                raise
            await self._refuse(scope, receive, send, limit, declared_note=False)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, limit: int, *, declared_note: bool = True
    ) -> None:
        detail = f"The request body exceeds the limit of {limit} bytes."
        if declared_note:
            note("body_too_large", limit=limit)
        # The rest of the body is left unread; the server closes the connection after the answer.
        response = problem_response(scope, 413, detail, headers={"Connection": "close"})
        await response(scope, receive, send)
