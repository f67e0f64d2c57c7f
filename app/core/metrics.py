"""Prometheus exposition, single-process or multiprocess.

Metrics themselves are defined next to what they measure (the HTTP metrics in
`app/middleware/metrics.py`, the breaker's in `app/core/breaker.py`, ...). This module
renders them: from the default registry in one process, or, when `PROMETHEUS_MULTIPROC_DIR` is
set (several uvicorn/gunicorn workers), by merging every worker's files in that directory.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from app import __version__

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# `*_created` series double every counter and histogram for a timestamp nobody queries.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The conventional "info" gauge: always 1, the facts are in the labels. (prometheus_client's
# Info type cannot be used in multiprocess mode.)
BUILD_INFO = Gauge(
    "app_build_info",
    "Version of the running service.",
    ["version"],
    multiprocess_mode="max",
)
BUILD_INFO.labels(version=__version__).set(1)


def multiprocess_enabled() -> bool:
    """True when worker processes share metrics through files (PROMETHEUS_MULTIPROC_DIR)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def render_metrics(*, openmetrics: bool = False) -> tuple[bytes, str]:
    """The exposition text and its content type: Prometheus text, or OpenMetrics (which
    carries exemplars) when `openmetrics`."""
    registry = REGISTRY
    if multiprocess_enabled():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    if openmetrics:
        body: bytes = openmetrics_latest(registry)  # type: ignore[no-untyped-call]
        return body, OPENMETRICS_CONTENT_TYPE
    return generate_latest(registry), CONTENT_TYPE_LATEST


def release_process_metrics() -> None:
    """In multiprocess mode, drop this worker's live gauges (in-progress, breaker state, ...)
    so a stopped worker stops being counted; counters and histograms stay, as they should."""
    if multiprocess_enabled():
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
