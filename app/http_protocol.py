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
- uvicorn's cap (`limit_concurrency`) counts every open connection and answers *every* request
  503 once there are that many, logging a warning for each, so useful throughput collapses
  past the cap (docs/benchmarks.md, "Overload: goodput and probes past the connection cap"). Here
  the cap is on connections, decided once when a connection opens: the first `cap` are served
  without a per-request check; the next `PROBE_RESERVE` are served only the probe paths (so
  Kubernetes does not restart a server that is only busy); past those, a connection is not
  read: it waits, as in a listen backlog, for a served one to close (oldest first), and after
  `ADMISSION_WAIT_SECONDS` is answered a prepared 503 with `Retry-After` and closed, counted
  in `http_connections_refused_total` and logged at most once every 10 s;
- while the server drains before it stops, every answer says `Connection: close` and ends its
  connection, so no client reuses one that the listener's closing would cut under a request.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.logging import get_logger

log = get_logger("app.server")

_END_OF_HEAD = b"\r\n\r\n"
_LINGER_SECONDS = 2.0
# Connections past the cap that are still served the probe paths (and nothing else).
PROBE_RESERVE = 64
# How long a connection past the cap waits for a place before it is answered 503.
ADMISSION_WAIT_SECONDS = 5.0
_REFUSAL_LOG_SECONDS = 10.0

CONNECTIONS_REFUSED = Counter(
    "http_connections_refused_total",
    "Connections answered 503 and closed at once: the server held its cap of connections.",
)


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
    # Open connections admitted under the cap, and in the probes' reserve (one dict per class
    # that `head_timeout_protocol` makes, so per server).
    open_counts: dict[str, int] = {"admitted": 0, "reserve": 0}
    # Connections past the cap and the reserve, oldest first, waiting for a place.
    waiting: OrderedDict[int, HeadTimeoutProtocol] = OrderedDict()

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
        self._counted: str | None = None  # which of `open_counts` this connection is in
        self._gave_up: asyncio.TimerHandle | None = None  # while waiting for admission
        self.cap = self.limit_concurrency

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
        limit = self.limit_concurrency
        if limit is not None:
            counts = self.open_counts
            if counts["admitted"] < limit:
                # Admitted: the cap is on connections and this one is within it; uvicorn's
                # own check would refuse its requests whenever others open past the cap.
                counts["admitted"] += 1
                self._counted = "admitted"
                self.limit_concurrency = None
            elif counts["reserve"] < PROBE_RESERVE:
                counts["reserve"] += 1  # probes only: uvicorn answers anything else 503
                self._counted = "reserve"
            else:
                self._wait_for_admission()
                return
        self._head_began = self.loop.time()  # a client that connects and sends nothing
        self._arm(self.head_timeout)

    def _wait_for_admission(self) -> None:
        # Not read, not parsed: the connection waits, as in a listen backlog, for one that
        # closes, and is answered 503 if none does within `ADMISSION_WAIT_SECONDS`. A refusal
        # at once would cost as much as a request each time the client came straight back.
        self.transport.pause_reading()
        self.waiting[id(self)] = self
        self._gave_up = self.loop.call_later(ADMISSION_WAIT_SECONDS, self._give_up)

    def _give_up(self) -> None:
        self._gave_up = None
        if self.waiting.pop(id(self), None) is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._refuse_connection()

    def _admit(self) -> None:
        if self._gave_up is not None:
            self._gave_up.cancel()
            self._gave_up = None
        self.open_counts["admitted"] += 1
        self._counted = "admitted"
        self.limit_concurrency = None
        self._head_began = self.loop.time()
        self._arm(self.head_timeout)
        self.transport.resume_reading()

    def _refuse_connection(self) -> None:
        CONNECTIONS_REFUSED.inc()
        _note_refusal(self.loop.time())
        self._discarding = True
        self.transport.write(_BUSY)
        # A lingering close (as for 431): the client's request, sent meanwhile, is read and
        # dropped, so its kernel does not reset the connection before the answer is read.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._body_deadline = self.loop.call_later(_LINGER_SECONDS, self._body_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._gave_up is not None:
            self._gave_up.cancel()
            self._gave_up = None
        self.waiting.pop(id(self), None)
        if self._counted is not None:
            self.open_counts[self._counted] -= 1
            if self._counted == "admitted":
                self._admit_next()
            self._counted = None
        self._disarm()
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None
        super().connection_lost(exc)

    def _admit_next(self) -> None:
        # A place is free: the connection that has waited longest takes it.
        while self.waiting and self.open_counts["admitted"] < (self.cap or 0):
            _, waiting = self.waiting.popitem(last=False)
            if not waiting.transport.is_closing():
                waiting._admit()
                return

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


# Prepared once: a refusal must cost less than the request it refuses.
_BUSY_BODY = orjson.dumps(
    {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The server holds as many connections as it serves; retry shortly.",
    }
)
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n"
    b"content-length: %d\r\nretry-after: 1\r\nconnection: close\r\n\r\n%s"
) % (len(_BUSY_BODY), _BUSY_BODY)
_refusals = {"since_log": 0, "logged_at": float("-inf")}


def _note_refusal(now: float) -> None:
    # One line every 10 s at most: a log line per refusal would cost more than the refusal.
    _refusals["since_log"] += 1
    if now - _refusals["logged_at"] >= _REFUSAL_LOG_SECONDS:
        log.warning("connections_refused", count=_refusals["since_log"], reason="connection cap")
        _refusals["since_log"], _refusals["logged_at"] = 0, now


def head_timeout_protocol(
    seconds: float,
    max_head_bytes: int = 16_384,
    draining: Callable[[], bool] | None = None,
) -> type[HeadTimeoutProtocol]:
    """A protocol class whose head deadline is `seconds`, whose heads are bounded by
    `max_head_bytes`, and that ends connections while `draining()` (uvicorn takes a class, not
    a factory)."""
    attributes: dict[str, Any] = {
        "head_timeout": seconds,
        "max_head_bytes": max_head_bytes,
        "open_counts": {"admitted": 0, "reserve": 0},
        "waiting": OrderedDict(),
    }
    if draining is not None:
        attributes["draining"] = staticmethod(draining)
    return type("HeadTimeoutProtocol", (HeadTimeoutProtocol,), attributes)
