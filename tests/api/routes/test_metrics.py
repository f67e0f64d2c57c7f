"""`/metrics` in process: the Prometheus text format, labelled by route template (a client
cannot mint series with ids), and hidden from scrapers outside `APP_METRICS_ALLOWED_NETWORKS`."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings, load_settings
from app.main import create_app


def _count(text: str, route: str, status: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_requests_total"
        and sample.labels["route"] == route
        and sample.labels["status"] == status
    )


async def test_requests_are_counted_by_route_template(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    for user_id in (123456, 654321):
        assert (await client.get(f"/api/v1/users/{user_id}")).status_code == 404
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    route = "/api/v1/users/{user_id}"
    assert _count(response.text, route, "404") - _count(before, route, "404") == 2
    # No label holds a raw path (a sample's value may hold the digits by chance: 0.0591234569).
    labels = {
        value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        for value in sample.labels.values()
    }
    assert route in labels
    assert not [value for value in labels if "123456" in value or "654321" in value]


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)  # its client is 127.0.0.1
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_only_allowed_networks_may_scrape() -> None:
    # One app at a time: each makes its thread pool the loop's default executor.
    elsewhere = load_settings().model_copy(
        update={"metrics_allowed_networks": [ipaddress.ip_network("10.0.0.0/8")]}
    )
    async with _client(elsewhere) as outsider:
        hidden = await outsider.get("/metrics")
        assert hidden.status_code == 404
        assert hidden.headers["content-type"] == "application/problem+json"
    here = load_settings().model_copy(
        update={"metrics_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")]}
    )
    async with _client(here) as scraper:
        assert (await scraper.get("/metrics")).status_code == 200
