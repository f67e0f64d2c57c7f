"""The tracer provider and its OTLP/HTTP exporter, built only when tracing is on
(`app/core/tracing.py` says when).

The SDK reads the standard variables itself: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default: parent-based, always on),
`OTEL_EXPORTER_OTLP_*` (endpoint, headers, timeout, certificates), `OTEL_BSP_*` (the batch).
The provider is the app's own, not the global one. Spans are exported by the SDK's batch
processor from a thread of its own, so exporting never blocks the event loop, and a collector
that is down costs the app nothing but the spans it could not send (counted in
`trace_spans_dropped_total`; the batch's queue is bounded, 2,048 spans by default).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import Counter

from app.core.logging import get_logger
from app.core.tracing import EXPORT_TIMEOUT_SECONDS

log = get_logger(__name__)

SERVICE_NAME = "resilient-api"
_TIMEOUTS = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")

SPANS_DROPPED = Counter(
    "trace_spans_dropped_total",
    "Spans that could not be exported (the collector unreachable or refusing).",
)


class CountingExporter(SpanExporter):
    """The OTLP exporter, counting the spans it failed to deliver, and saying so when exports
    start failing and when they work again (not once per batch: a collector that is down
    would fill the log; the exporter's own per-batch lines are silenced for that reason)."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter
        self._failing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._exporter.export(spans)
        if result is not SpanExportResult.SUCCESS:
            SPANS_DROPPED.inc(len(spans))
            if not self._failing:
                self._failing = True
                log.warning("trace_export_failed", spans=len(spans))
        elif self._failing:
            self._failing = False
            log.info("trace_export_recovered")
        return result

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)


def build_tracer_provider(
    version: str, instance_id: str | None = None, *, shutdown_on_exit: bool = False
) -> TracerProvider:
    """A provider exporting over OTLP/HTTP in batches, describing this process as a service
    (`OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` override what is given here)."""
    # What the environment says (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, the SDK's own)
    # wins over these defaults; the SDK's placeholder name does not.
    attributes: dict[str, Any] = {
        "service.name": SERVICE_NAME,
        "service.version": version,
        "service.instance.id": instance_id or f"{socket.gethostname()}-{os.getpid()}",
    }
    explicit = {
        pair.split("=", 1)[0].strip()
        for pair in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
        if "=" in pair
    }
    if os.environ.get("OTEL_SERVICE_NAME", "").strip():
        explicit.add("service.name")
    for key, value in Resource.create({}).attributes.items():
        # The SDK's own placeholders (an unknown service, a random instance id) do not win
        # over ours; what the operator set does.
        if key in ("service.name", "service.instance.id") and key not in explicit:
            continue
        attributes[key] = value
    resource = Resource(attributes)
    # Their lines per failed batch (and per retry) would repeat what `CountingExporter` says
    # once and counts; the SDK's own queue-full warning stays.
    logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
    # The web process's provider is shut down by the lifespan, within a bound, and not again
    # at exit, where it could block; a worker process has no lifespan: its flushes at exit.
    provider = TracerProvider(resource=resource, shutdown_on_exit=shutdown_on_exit)
    timeout = None if any(os.environ.get(n) for n in _TIMEOUTS) else EXPORT_TIMEOUT_SECONDS
    exporter = CountingExporter(OTLPSpanExporter(timeout=timeout))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
