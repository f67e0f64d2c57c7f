"""Handles on this process's ticker streams, so a client can ask the server to drop one.

Dropping ends the stream from the server side, the way a restart or a network cut would, and
the browser's `EventSource` reconnects by itself with `Last-Event-ID`: the console shows that
resume happening. A handle is an unguessable token sent to the stream's own client only, and
it is forgotten when the stream ends, so the registry is bounded by the open streams (which the
SSE quota bounds per client).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager


class TickerDrops:
    """Open ticker streams by handle, each with the event that ends it."""

    def __init__(self) -> None:
        self._streams: dict[str, asyncio.Event] = {}

    @contextmanager
    def register(self) -> Iterator[tuple[str, asyncio.Event]]:
        """A fresh handle and its drop event, for as long as the stream runs."""
        handle = secrets.token_urlsafe(16)
        dropped = asyncio.Event()
        self._streams[handle] = dropped
        try:
            yield handle, dropped
        finally:
            self._streams.pop(handle, None)

    def drop(self, handle: str) -> bool:
        """End the stream `handle` names; False when no such stream is open here."""
        dropped = self._streams.get(handle)
        if dropped is None:
            return False
        dropped.set()
        return True

    def __len__(self) -> int:
        return len(self._streams)
