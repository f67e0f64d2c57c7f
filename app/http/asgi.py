"""Small helpers for raw ASGI messages, for the middleware on every request's hot path.

Starlette's `Headers` / `MutableHeaders` are convenient but build objects and scan the whole
list per call; these touch only what they need.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Message, Scope


def get_header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower-case bytes) in the request, or None."""
    for key, value in scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def append_headers(message: Message, headers: Iterable[tuple[str, str]]) -> None:
    """Add headers to an `http.response.start` message (for names the app never sets)."""
    raw = list(message.get("headers", ()))
    raw.extend((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers)
    message["headers"] = raw
