"""OpenTelemetry traces, opt-in: whether to trace, and reading the trace running now.

Off by default, and then nothing traces on a request: no provider is built (the SDK and the
exporter, `app/core/trace_export.py`, are not even imported), the tracing layer is not in the
chain, and the Redis client makes no spans. On when `APP_TRACING_ENABLED` is true or an OTLP
endpoint is configured the standard way (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless `OTEL_SDK_DISABLED=true`.
"""

from __future__ import annotations

import os

from opentelemetry import trace

# Without a timeout of the operator's, an export gives up after this; at shutdown the spans
# still queued are waited for this long at most.
EXPORT_TIMEOUT_SECONDS = 3.0
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracing_wanted(enabled_by_setting: bool) -> bool:
    """Whether to trace: the app's setting, or an OTLP endpoint configured the standard way;
    never with `OTEL_SDK_DISABLED=true`."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return enabled_by_setting or any(os.environ.get(name, "").strip() for name in _ENDPOINTS)


def sampled_trace_id() -> str | None:
    """The trace id of the span running now if it is sampled (exported), else None: what an
    exemplar may point to."""
    context = trace.get_current_span().get_span_context()
    return (
        format(context.trace_id, "032x")
        if context.is_valid and context.trace_flags.sampled
        else None
    )


def current_trace_id() -> str | None:
    """The trace id of the span running now (32 hex digits), or None when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
