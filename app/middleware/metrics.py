"""HTTP metrics: requests, durations and requests in progress, labelled by route template.

The duration histogram is labelled by status class (`2xx`, `4xx`, ...), not status: the
latency of a 404 and a 409 tells an operator the same, and every extra label value multiplies
a histogram's twelve buckets. Streams (SSE, NDJSON) are counted but not timed: a stream's
lifetime is not a request latency, and minutes-long streams would swamp the buckets.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.tracing import sampled_trace_id
from app.http.paths import NO_PATHS, Paths
from app.http.routing import HTTP_METHODS, route_template

# From a few milliseconds (a cached read) to the 10 s request timeout and a little past it.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from receiving a request to finishing its response, by method, route and status "
    "class; streams are not timed.",
    ["method", "route", "status_class"],
    buckets=LATENCY_BUCKETS,
)
IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being served now.",
    ["method"],
    multiprocess_mode="livesum",
)

# Methods are a label; anything unusual shares one value so clients cannot mint series.
_KNOWN_METHODS = frozenset(HTTP_METHODS)
_IN_PROGRESS_BY_METHOD = {m: IN_PROGRESS.labels(method=m) for m in (*_KNOWN_METHODS, "OTHER")}


class MetricsMiddleware:
    """Counts and times every HTTP request except the `skip` paths (`/metrics`).

    The route label is the matched template, and one shared value for unmatched paths, so a
    scan of random URLs cannot create unbounded series. The status defaults to 500 and is
    recorded in `finally`, so a request that crashed is still counted.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        skip: Paths = NO_PATHS,
        stream_routes: Collection[str] = (),
        exemplars: bool = False,
    ) -> None:
        self.app = app
        # With tracing on: each latency observation carries its sampled trace's id.
        self.exemplars = exemplars
        self.skip = skip
        self.stream_routes = frozenset(stream_routes)
        # labels() validates and locks on every call; the label sets are few and bounded
        # (known methods x route templates x status codes), so keep their children.
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def _series(self, method: str, route: str, status: str) -> tuple[Any, Any]:
        key = (method, route, status)
        series = self._children.get(key)
        if series is None:
            count = REQUESTS.labels(method=method, route=route, status=status)
            duration = None
            if route not in self.stream_routes:
                duration = DURATION.labels(
                    method=method, route=route, status_class=f"{status[0]}xx"
                )
            series = (count, duration)
            self._children[key] = series
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        status = 500

        async def send_observing(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress = _IN_PROGRESS_BY_METHOD.get(method) or IN_PROGRESS.labels(method=method)
        in_progress.inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_observing)
        finally:
            elapsed = time.perf_counter() - start
            in_progress.dec()
            count, duration = self._series(method, route_template(scope), str(status))
            count.inc()
            if duration is not None:
                if self.exemplars and (trace_id := sampled_trace_id()) is not None:
                    duration.observe(elapsed, exemplar={"trace_id": trace_id})
                else:
                    duration.observe(elapsed)
