"""Rate limiting against real servers."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.depth import scaled
from tests.e2e.helpers import USERS, assert_problem, bearer, unique_email
from tests.live_server import LiveServer

QUOTA = 10
BURST = scaled(2_000, 10_000)


SERVER_ENV = {"APP_RATE_LIMIT_REQUESTS": str(QUOTA), "APP_RATE_LIMIT_WINDOW_SECONDS": "60"}


@pytest.fixture(scope="module")
def proxied_server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(
        {
            "APP_RATE_LIMIT_REQUESTS": "2",
            "APP_RATE_LIMIT_WINDOW_SECONDS": "60",
            "APP_TRUSTED_PROXIES": "127.0.0.1",
        }
    )


def test_quota_fields_and_429_with_retry_after(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.base_url) as http:
        # A fake X-Forwarded-For from an untrusted peer changes nothing: same client, same quota.
        answers = [
            http.get(USERS, headers={"X-Forwarded-For": f"10.9.8.{i}"}) for i in range(QUOTA + 1)
        ]
        assert [a.status_code for a in answers] == [200] * QUOTA + [429]
        assert answers[0].headers["ratelimit-policy"] == f'"default";q={QUOTA};w=60'
        assert answers[0].headers["ratelimit"].startswith(f'"default";r={QUOTA - 1};t=')
        refused = answers[-1]
        body = assert_problem(refused, 429)
        assert body["type"] == "/problems/rate-limited"
        assert int(refused.headers["retry-after"]) == 60 // QUOTA
        assert refused.headers["ratelimit"].startswith('"default";r=0;')
        # 404s under /api/v1 count as well, and are refused the same way.
        assert http.get("/api/v1/nothing").status_code == 429
        # Probes, metrics and docs are never limited and carry no fields.
        for path in ("/live", "/ready", "/health", "/metrics", "/openapi.json"):
            response = http.get(path)
            assert response.status_code == 200, path
            assert "ratelimit" not in response.headers


def test_an_invalid_token_does_not_buy_a_fresh_quota(live_server: LiveServer) -> None:
    # The address spent its quota above; a made-up token must not count as another client.
    with httpx.Client(base_url=live_server.base_url) as http:
        assert http.get(USERS, headers=bearer("garbage")).status_code == 429


@pytest.mark.soak
def test_a_burst_of_requests_leaves_the_server_healthy(live_server: LiveServer) -> None:
    async def burst() -> Counter[int]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(
            base_url=live_server.base_url, limits=limits, timeout=30
        ) as client:
            sem = asyncio.Semaphore(50)

            async def one() -> int:
                async with sem:
                    return (await client.get(USERS)).status_code

            return Counter(await asyncio.gather(*(one() for _ in range(BURST))))

    start = time.monotonic()
    codes = asyncio.run(burst())
    elapsed = time.monotonic() - start
    assert set(codes) <= {200, 429}, codes
    # At most the quota (which the module's earlier tests have spent, when they ran) and the
    # tokens that trickled back during the burst were granted.
    assert codes[200] <= QUOTA + 1 + elapsed * QUOTA / 60, (codes, elapsed)
    with httpx.Client(base_url=live_server.base_url) as http:
        assert http.get("/ready").status_code == 200
        assert http.get("/live").json() == {"status": "alive"}
        metrics = http.get("/metrics").text
    limited = next(
        line
        for line in metrics.splitlines()
        if line.startswith("http_rate_limited_requests_total ")
    )
    # Every refusal of the burst is counted (earlier tests of the module add theirs).
    assert float(limited.split()[1]) >= codes[429]


def test_trusted_proxy_forwarded_for_identifies_clients(proxied_server: LiveServer) -> None:
    with httpx.Client(base_url=proxied_server.base_url) as http:
        first = [
            http.get(USERS, headers={"X-Forwarded-For": "198.51.100.1"}).status_code
            for _ in range(3)
        ]
        second = [
            http.get(USERS, headers={"X-Forwarded-For": "198.51.100.2"}).status_code
            for _ in range(3)
        ]
    assert first == [200, 200, 429]
    assert second == [200, 200, 429]


def test_authenticated_clients_are_limited_by_subject(proxied_server: LiveServer) -> None:
    with httpx.Client(base_url=proxied_server.base_url) as http:
        email = unique_email("limited")
        forwarded = {"X-Forwarded-For": "198.51.100.50"}
        http.post(
            USERS, json={"email": email, "name": "L", "password": "password123"}, headers=forwarded
        )
        token_response = http.post(
            "/api/v1/auth/token",
            data={"username": email, "password": "password123"},
            headers=forwarded,
        )
        token = token_response.json()["access_token"]
        assert http.get(USERS, headers=forwarded).status_code == 429  # the address is spent
        auth = {**forwarded, **bearer(token)}
        assert [http.get("/api/v1/auth/me", headers=auth).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
