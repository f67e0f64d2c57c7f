"""Span events for the chain's decisions (rate-limited, breaker refused, timed out, too
large): written into the request's span when tracing is on; nothing at all when it is off
(there is then no span that records)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue


def note(event: str, **attributes: AttributeValue) -> None:
    """Add `event` to the span running now, if one is recording."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(event, attributes)
