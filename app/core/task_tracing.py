"""A CPU task's trace across the process boundary (tracing on only): the web process sends the
task's W3C context with it; the worker continues that trace with a span for the time the task
waited in the pool's queue and one for its computation, exported by the worker itself.

Importable by worker processes: it knows no web framework. The worker's tracer provider is
built on its first traced task, from the same standard variables (the workers inherit the
environment), and describes the worker as its own instance (host name and worker pid).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import propagate

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

T = TypeVar("T")

_tracer: Tracer | None = None


def _worker_tracer() -> Tracer:
    global _tracer
    if _tracer is None:
        from app import __version__
        from app.core.trace_export import build_tracer_provider

        provider = build_tracer_provider(__version__, shutdown_on_exit=True)
        _tracer = provider.get_tracer("resilient-api.worker")
    return _tracer


def context_carrier() -> dict[str, str]:
    """The current trace context as W3C headers, to send with a task."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def traced_task(carrier: dict[str, str], submitted_ns: int, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in a worker, continuing the sender's trace: `pool queue wait` from the
    submission to now, then `pool task <fn>` around the computation."""
    started_ns = time.time_ns()
    tracer = _worker_tracer()
    parent = propagate.extract(carrier)
    name = getattr(fn, "__name__", "task")
    tracer.start_span("pool queue wait", context=parent, start_time=submitted_ns).end(
        end_time=max(started_ns, submitted_ns)
    )
    with tracer.start_as_current_span(
        f"pool task {name}",
        context=parent,
        start_time=started_ns,
        attributes={"code.function": name},
    ):
        return fn(*args)
