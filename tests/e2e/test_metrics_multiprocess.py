"""Metrics with PROMETHEUS_MULTIPROC_DIR set (several workers share one exposition)."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.live_server import start_server


def test_multiprocess_mode_exposes_merged_metrics(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    server = start_server(tmp_path / "server.log", {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    try:
        with httpx.Client(base_url=server.base_url) as http:
            for _ in range(3):
                assert http.get("/api/v1/users").status_code == 200
            text = http.get("/metrics").text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        key = (
            "http_requests_total",
            (("method", "GET"), ("route", "/api/v1/users"), ("status", "200")),
        )
        assert samples[key] == 3
        assert any(name == "app_build_info" for name, _ in samples)
        # Each worker writes its own files into the shared directory.
        assert any(metrics_dir.glob("*.db"))
    finally:
        server.stop()
