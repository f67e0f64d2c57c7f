"""When the app traces: off by default, on by its setting or a standard OTLP endpoint, never
with the SDK disabled; and off, nothing of it is in the chain."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from app.core.config import load_settings
from app.core.tracing import current_trace_id, tracing_wanted
from app.main import create_app
from app.middleware.tracing import TracingMiddleware


def _layers(app: FastAPI) -> list[str]:
    return [getattr(m.cls, "__name__", "") for m in app.user_middleware]


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
    ):
        monkeypatch.delenv(name, raising=False)


def test_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not tracing_wanted(False)
    assert tracing_wanted(True)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
    assert tracing_wanted(False)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing_wanted(True)


def test_off_the_chain_has_no_tracing_layer_and_nothing_is_traced() -> None:
    app = create_app(load_settings())
    assert TracingMiddleware.__name__ not in _layers(app)
    assert current_trace_id() is None


def test_on_the_tracing_layer_wraps_the_request_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_TRACING_ENABLED", "true")
    layers = _layers(create_app(load_settings()))
    # Outside the request context, so the access line is written inside the span.
    assert layers.index("TracingMiddleware") < layers.index("RequestContextMiddleware")
