"""Reads outside the API's quota cannot be flooded by one address (the review's N8: `hey -c 32`
on `/metrics` took another client's `GET /users/1` p50 from 2.1 to 153 ms), and the detailed
health is an admin's in production (the first review's finding 24: it named Redis's host, the
worker pids and every subscriber pattern to anyone)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import ServerFactory
from tests.live_server import ADMIN_EMAIL, start_server
from tests.security.test_startup import NEW_ADMIN_PASSWORD, _production

LIGHT = {"APP_RATE_LIMIT_REQUESTS": "100", "APP_LIGHT_RATE_LIMIT_REQUESTS": "20"}


def _from(base_url: str, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=10)


def test_one_address_flooding_cheap_reads_is_refused_and_no_one_else_is(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(LIGHT)
    with (
        _from(server.base_url, "127.0.0.2") as flooder,
        _from(server.base_url, "127.0.0.3") as other,
    ):
        for path in ("/metrics", "/static/app/console/main.js", "/openapi.json"):
            codes = [flooder.get(path).status_code for _ in range(6)]
            assert set(codes) == {200}, (path, codes)
        codes = [flooder.get("/api/v1/resilience").status_code for _ in range(5)]
        assert codes[-1] == 429  # the 21st cheap read within the minute
        refused = flooder.get("/metrics")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert 'light";q=20;w=60' in refused.headers["ratelimit-policy"]
        # The probes are never limited: the kubelet always gets its answer.
        assert {flooder.get("/live").status_code for _ in range(30)} == {200}
        # Another address, and the API's own quota, are untouched.
        assert other.get("/metrics").status_code == 200
        assert flooder.get("/api/v1/users/1").status_code == 200


def test_metrics_can_be_kept_to_the_scrapers_network(server_factory: ServerFactory) -> None:
    server = server_factory({"APP_METRICS_ALLOWED_NETWORKS": "127.0.0.8/29"})
    with _from(server.base_url, "127.0.0.9") as scraper, _from(server.base_url, "127.0.0.2") as out:
        assert scraper.get("/metrics").status_code == 200
        assert out.get("/metrics").status_code == 404


def test_production_shows_the_detailed_health_to_admins_only(tmp_path: Path) -> None:
    server = start_server(tmp_path / "production.log", _production(tmp_path / "snapshot.json"))
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            assert http.get("/health/detailed").status_code == 401
            http.post(
                "/api/v1/users",
                json={"email": "plain@example.com", "name": "P", "password": "password123"},
            )
            user = http.post(
                "/api/v1/auth/token",
                data={"username": "plain@example.com", "password": "password123"},
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {user}"}
            assert http.get("/health/detailed", headers=headers).status_code == 403
            admin = http.post(
                "/api/v1/auth/token",
                data={"username": ADMIN_EMAIL, "password": NEW_ADMIN_PASSWORD},
            ).json()["access_token"]
            detailed = http.get("/health/detailed", headers={"Authorization": f"Bearer {admin}"})
            assert detailed.status_code == 200
            assert {check["name"] for check in detailed.json()["checks"]} >= {"process_pool"}
            assert http.get("/health").status_code == 200  # the plain probes stay open
    finally:
        server.stop()
