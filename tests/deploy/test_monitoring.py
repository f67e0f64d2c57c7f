"""The operator's rules and dashboard: checked and unit-tested with promtool, then loaded by a
real Prometheus that scrapes a real server, where every recording rule must return series and
every dashboard query must evaluate."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ServerFactory
from tests.live_server import ROOT, LiveServer

MONITORING = ROOT / "k8s" / "monitoring"


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing in CI: .ci/run installs the Debian package prometheus")
        pytest.skip(f"{name} not installed (Debian package prometheus); CI installs it")
    return found


def _rule_spec(evaluation_interval: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]
    if evaluation_interval is not None:
        for group in spec["groups"]:
            group["interval"] = evaluation_interval
    return spec


def _records() -> list[str]:
    return [r["record"] for g in _rule_spec()["groups"] for r in g["rules"] if "record" in r]


def _alerts() -> list[dict[str, Any]]:
    return [r for g in _rule_spec()["groups"] for r in g["rules"] if "alert" in r]


def _dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_rules_pass_promtool_check_and_unit_tests(tmp_path: Path) -> None:
    promtool = _binary("promtool")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(_rule_spec()))
    shutil.copy(MONITORING / "rules.test.yaml", tmp_path / "rules.test.yaml")
    checked = subprocess.run(
        [promtool, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "rules.test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_explained_and_unit_tested() -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    unit_tests = (MONITORING / "rules.test.yaml").read_text()
    for alert in _alerts():
        name = alert["alert"]
        annotations = alert["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), name
        anchor = annotations["runbook_url"].split("#", 1)[1]
        assert f"## {name}" in runbooks, name
        assert anchor == name.lower(), name
        assert f"alertname: {name}" in unit_tests, name


def test_the_dashboard_has_a_row_for_each_concern() -> None:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == [
        "Traffic",
        "Latency",
        "Errors",
        "Circuit breakers",
        "Rate limiting",
        "Event bus",
        "Process pool",
        "Cache",
        "Realtime",
        "Shared store (Redis)",
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


@pytest.fixture(scope="module")
def prometheus(
    server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, LiveServer, LiveServer]]:
    """A real Prometheus (exemplar storage on) scraping two apps: one as shipped, one with
    tracing on (its spans go nowhere: only the exemplars matter here)."""
    binary = _binary("prometheus")
    app = server_factory()
    traced = server_factory({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_free_port()}"})
    folder = tmp_path_factory.mktemp("prometheus")
    (folder / "rules.yml").write_text(yaml.safe_dump(_rule_spec(evaluation_interval="1s")))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [
            {
                "job_name": "resilient-api",
                "static_configs": [{"targets": [app.base_url.removeprefix("http://")]}],
            },
            {
                "job_name": "resilient-api-traced",
                "static_configs": [{"targets": [traced.base_url.removeprefix("http://")]}],
            },
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
        ],
        stdout=(folder / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail((folder / "prometheus.log").read_text()[-3000:])
        yield base, app, traced
    finally:
        process.terminate()
        process.wait(10)


def _query(base: str, expr: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(base + "/api/v1/query", params={"query": expr}).json()
    return body


def test_a_real_prometheus_scrapes_the_app_and_evaluates_every_rule_and_panel(
    prometheus: tuple[str, LiveServer, LiveServer],
) -> None:
    base, app, _ = prometheus
    with httpx.Client(base_url=app.base_url) as http:
        for i in range(5):  # traffic for every family the rules and panels read
            http.post(
                "/api/v1/users",
                json={"email": f"prom{i}@example.com", "name": "P", "password": "password123"},
            )
            http.get("/api/v1/users")
            http.get("/api/v1/users/1")
            http.get("/no/such/path")
            http.get("/api/v1/demo/flaky", params={"failure_rate": 0.5})
            http.post("/api/v1/events", json={"topic": "prom.test", "data": i})
            time.sleep(0.5)
    # Rules evaluate every second; give them a few rounds after two scrapes have happened.
    deadline = time.monotonic() + 30
    missing = _records()
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = [r for r in _records() if not _query(base, r)["data"]["result"]]
    assert missing == []
    targets = httpx.get(base + "/api/v1/targets").json()["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up", "up"]
    rules = httpx.get(base + "/api/v1/rules").json()["data"]["groups"]
    assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules
    for expr in _dashboard_queries():
        answer = _query(base, expr)
        assert answer["status"] == "success", (expr, answer)
    assert _query(base, 'route:http_requests:rate5m{route="/api/v1/users"}')["data"]["result"]


def test_a_traced_app_gives_prometheus_exemplars_that_name_sampled_traces(
    prometheus: tuple[str, LiveServer, LiveServer],
) -> None:
    base, app, traced = prometheus
    # Tracing off, the exposition stays the text format whatever the scraper accepts.
    plain = httpx.get(app.base_url + "/metrics", headers={"Accept": OPENMETRICS})
    assert plain.headers["content-type"].startswith("text/plain")
    assert "trace_id" not in plain.text
    # On, a scraper asking for OpenMetrics gets the latency histogram's exemplars.
    start = time.time()
    with httpx.Client(base_url=traced.base_url) as http:
        for _ in range(10):
            assert http.get("/api/v1/users/1").status_code == 200
        scraped = http.get("/metrics", headers={"Accept": OPENMETRICS})
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    assert '# {trace_id="' in scraped.text
    query = 'http_request_duration_seconds_bucket{job="resilient-api-traced"}'
    deadline = time.monotonic() + 30
    found: list[dict[str, Any]] = []
    while not found and time.monotonic() < deadline:
        time.sleep(1)
        answer = httpx.get(
            base + "/api/v1/query_exemplars",
            params={"query": query, "start": start - 60, "end": time.time() + 60},
        ).json()
        found = [e for series in answer["data"] for e in series["exemplars"]]
    assert found, "Prometheus stored no exemplar"
    trace_ids = {e["labels"]["trace_id"] for e in found}
    assert all(len(t) == 32 and int(t, 16) for t in trace_ids)
