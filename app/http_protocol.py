"""uvicorn's httptools protocol with bounds on what a connection can make the server hold.

uvicorn times out idle keep-alive connections, but:
- a client that sends its head a line at a time (slow loris) is held for as long as it likes:
  here a head not finished within `head_timeout` seconds of starting it (or of connecting)
  closes the connection;
- httptools buffers a header of any size until its line ends: here the head's bytes are
  counted as they arrive, before the parser sees them, and a head past `max_head_bytes` is
  answered 431 and its connection closed, so memory per connection is bounded before parsing;
- a client that trickles a body after its answer was sent (a 504, a 413) keeps the connection
  while uvicorn discards what it sends: here the rest of the body must arrive within
  `head_timeout`, or the connection is closed;
- past the connection cap uvicorn answers everything 503, the probes included, so Kubernetes
  would restart a server that is only busy: here the probe paths are always served;
- while the server drains before it stops, every answer says `Connection: close` and ends its
  connection, so no client reuses one that the listener's closing would cut under a request.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_END_OF_HEAD = b"\r\n\r\n"
_LINGER_SECONDS = 2.0


def _refusal(status: int, reason: bytes, detail: str, instance: str) -> bytes:
    request_id = secrets.token_hex(16)
    body = orjson.dumps(
        {
            "type": "about:blank",
            "title": reason.decode(),
            "status": status,
            "detail": detail,
            "instance": instance,
            "request_id": request_id,
        }
    )
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
        b"content-length: %d\r\nx-request-id: %s\r\nconnection: close\r\n\r\n"
    ) % (status, reason, len(body), request_id.encode())
    return head + body


class HeadTimeoutProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` plus a per-request head deadline, a head size bound counted as the
    bytes arrive, and a deadline for a body still arriving after its answer; set
    `head_timeout` and `max_head_bytes` on the class.

    A timer is armed only for a head still unfinished once the bytes that arrived have been
    parsed. Nearly every request's head arrives whole in one read, and a timer armed and
    cancelled within that read cost each request more than the check does.
    """

    head_timeout: float = 10.0
    max_head_bytes: int = 16_384
    # Answered even past uvicorn's connection cap (`limit_concurrency`).
    reserved_paths: frozenset[bytes] = frozenset({b"/live", b"/ready", b"/health"})
    # Whether the server is draining (set by the server that uses the class).
    draining: Callable[[], bool] = staticmethod(lambda: False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        # When the unfinished head began (loop time); None while no head is unfinished.
        self._head_began: float | None = None
        # Bytes of the unfinished head seen so far; None while a request body is arriving.
        self._head_bytes: int | None = 0
        self._tail = b""  # the last bytes of the head so far: its end may straddle two reads
        self._body_deadline: asyncio.TimerHandle | None = None
        self._discarding = False  # refused: what still arrives is dropped unread

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

    def _body_timed_out(self) -> None:
        self._body_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_began = self.loop.time()  # a client that connects and sends nothing
        self._arm(self.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None
        super().connection_lost(exc)

    def _head_too_large(self, data: bytes) -> bool:
        seen = self._head_bytes
        if seen is None or seen + len(data) <= self.max_head_bytes:
            if seen is not None:
                self._head_bytes = seen + len(data)
                self._tail = (self._tail + data)[-3:]
            return False
        # Past the bound with this read: fine only if the head ends within it (the rest of
        # the read is a body or the next request).
        end = (self._tail + data).find(_END_OF_HEAD)
        return end == -1 or seen - len(self._tail) + end + len(_END_OF_HEAD) > self.max_head_bytes

    def _refuse_head(self) -> None:
        self._disarm()
        self._discarding = True
        detail = f"The request line and headers exceed {self.max_head_bytes} bytes."
        url = getattr(self, "url", b"")
        instance = url.split(b"?", 1)[0][:256].decode("latin-1")
        self.transport.write(_refusal(431, b"Request Header Fields Too Large", detail, instance))
        # A lingering close: what the client still sends is read and dropped for a moment, so
        # its kernel does not reset the connection before it has read the answer.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._body_deadline = self.loop.call_later(_LINGER_SECONDS, self._body_timed_out)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        if self._head_too_large(data):
            self._refuse_head()
            return
        super().data_received(data)
        began = self._head_began
        if began is not None and self._head_deadline is None and not self.transport.is_closing():
            self._arm(max(0.0, began + self.head_timeout - self.loop.time()))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_began = self.loop.time()

    def on_headers_complete(self) -> None:
        self._head_began = None
        self._head_bytes = None
        self._disarm()
        limit = self.limit_concurrency
        if limit is not None and self.url.split(b"?", 1)[0] in self.reserved_paths:
            # The probes are served past the connection cap: a server full of clients is
            # busy, not dead, and must not be restarted by Kubernetes for it.
            self.limit_concurrency = None
            try:
                super().on_headers_complete()
            finally:
                self.limit_concurrency = limit
        else:
            super().on_headers_complete()
        if self.cycle is not None and self.draining():
            self.cycle.keep_alive = False  # uvicorn then answers `Connection: close` and closes

    def on_message_complete(self) -> None:
        self._head_bytes, self._tail = 0, b""
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Answered before its body arrived whole: the client gets the head deadline to send
        # the rest (which is discarded), not for ever.
        cycle = self.cycle
        if cycle.more_body and self._body_deadline is None and not self.transport.is_closing():
            self._body_deadline = self.loop.call_later(self.head_timeout, self._body_timed_out)


def head_timeout_protocol(
    seconds: float,
    max_head_bytes: int = 16_384,
    draining: Callable[[], bool] | None = None,
) -> type[HeadTimeoutProtocol]:
    """A protocol class whose head deadline is `seconds`, whose heads are bounded by
    `max_head_bytes`, and that ends connections while `draining()` (uvicorn takes a class, not
    a factory)."""
    attributes: dict[str, Any] = {"head_timeout": seconds, "max_head_bytes": max_head_bytes}
    if draining is not None:
        attributes["draining"] = staticmethod(draining)
    return type("HeadTimeoutProtocol", (HeadTimeoutProtocol,), attributes)
