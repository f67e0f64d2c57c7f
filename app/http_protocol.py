"""uvicorn's httptools protocol with a deadline for the request head.

uvicorn times out idle keep-alive connections, but not a client that opens a connection and
sends its headers a line at a time (slow loris): each such connection is held for as long as the
client likes. Here a connection that has not finished sending a request's head within
`head_timeout` seconds of starting it (or of connecting) is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadTimeoutProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` plus a per-request head deadline; set `head_timeout` on the class.

    A timer is armed only for a head still unfinished once the bytes that arrived have been
    parsed. Nearly every request's head arrives whole in one read, and a timer armed and
    cancelled within that read cost each request more than the check does.
    """

    head_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        # When the unfinished head began (loop time); None while no head is unfinished.
        self._head_began: float | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(seconds, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_began = self.loop.time()  # a client that connects and sends nothing
        self._arm(self.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        began = self._head_began
        if began is not None and self._head_deadline is None and not self.transport.is_closing():
            self._arm(max(0.0, began + self.head_timeout - self.loop.time()))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_began = self.loop.time()

    def on_headers_complete(self) -> None:
        self._head_began = None
        self._disarm()
        super().on_headers_complete()


def head_timeout_protocol(seconds: float) -> type[HeadTimeoutProtocol]:
    """A protocol class whose head deadline is `seconds` (uvicorn takes a class, not a factory)."""
    return type("HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"head_timeout": seconds})
