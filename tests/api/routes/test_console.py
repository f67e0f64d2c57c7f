"""`GET /` for browsers and API clients, the console's static files, the readiness drain and
the breaker events the console streams (the console itself runs in tests/browser)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from app.api.negotiation import prefers_html
from app.api.routes.root import DEMOS
from app.api.routes.ticker import resume_after
from app.core.config import load_settings
from app.main import create_app
from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD

CONSOLE = Path(__file__).resolve().parents[3] / "app" / "static" / "console"
CHROME_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
)


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (CHROME_ACCEPT, True),
        ("text/html", True),
        ("*/*", False),  # curl
        ("", False),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0, */*", False),
        ("text/html;q=oops", False),
        ("text/html;q=0.9, application/json;q=0.9", True),
        ("," * 10_000 + "text/html", False),  # only the first items are read
    ],
)
def test_accept_decides_between_the_console_and_json(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html


async def test_a_browser_gets_the_console_under_a_strict_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"Accept": CHROME_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["vary"].startswith("Accept")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    page = response.text
    # No inline script or style anywhere, and nothing from another origin.
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert "<style" not in page
    assert " style=" not in page
    assert re.findall(r"(?:src|href)=\"(?:https?:)?//", page) == []


async def test_an_api_client_gets_the_index_with_every_demo(client: httpx.AsyncClient) -> None:
    for accept in ("*/*", "application/json"):
        response = await client.get("/", headers={"Accept": accept})
        assert response.headers["content-type"] == "application/json"
        assert response.headers["vary"].startswith("Accept")
        body = response.json()
        assert body["docs"] == "/docs"
        assert body["redoc"] == "/redoc"
        assert body["demos"] == DEMOS
    assert {"rate_limit", "timeout", "circuit_breaker", "sse", "chat", "event_bus"} <= set(DEMOS)
    assert {"cpu_work", "cache", "probes", "readiness_drain", "metrics"} <= set(DEMOS)


async def test_every_file_the_console_loads_is_served_and_small(
    client: httpx.AsyncClient,
) -> None:
    sizes = 0
    for path in sorted(CONSOLE.rglob("*")):
        if path.is_dir():
            continue
        sizes += path.stat().st_size
        if path.name == "index.html":
            continue
        url = "/static/app/console/" + path.relative_to(CONSOLE).as_posix()
        response = await client.get(url)
        assert response.status_code == 200, url
        if path.suffix == ".js":
            # Module scripts are refused by browsers under any other type.
            assert response.headers["content-type"].startswith("text/javascript"), url
    assert sizes < 200_000  # the page's own assets, uncompressed


async def _token(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_an_admin_drains_readiness_and_the_process_keeps_serving(
    client: httpx.AsyncClient,
) -> None:
    admin = await _token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    url = "/api/v1/admin/readiness"
    assert (await client.get(url, headers=admin)).json() == {"ready": True}
    drained = await client.put(url, json={"ready": False}, headers=admin)
    assert drained.json() == {"ready": False}
    ready = await client.get("/ready", params={"verbose": ""})
    assert ready.status_code == 503
    assert ready.json()["detail"] == "Not ready: drained by an admin."
    assert {"name": "drain", "status": "fail"} in ready.json()["checks"]
    assert (await client.get("/live")).status_code == 200
    assert (await client.get("/api/v1/users/1")).status_code == 200  # still serving
    await client.put(url, json={"ready": True}, headers=admin)
    assert (await client.get("/ready")).status_code == 200


async def test_only_an_admin_may_drain(client: httpx.AsyncClient) -> None:
    url = "/api/v1/admin/readiness"
    assert (await client.put(url, json={"ready": False})).status_code == 401
    await client.post(
        "/api/v1/users",
        json={"email": "not-admin@example.com", "name": "N", "password": "password123"},
    )
    user = await _token(client, "not-admin@example.com", "password123")
    refused = await client.put(url, json={"ready": False}, headers=user)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    admin = await _token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    for body in ({"ready": 0}, {"ready": "false"}, {"ready": False, "extra": 1}, {}):
        bad = await client.put(url, json=body, headers=admin)
        assert bad.status_code == 422, body
    assert (await client.get("/ready")).status_code == 200  # nothing changed


def test_production_has_no_drain_route() -> None:
    settings = load_settings().model_copy(update={"env": "production"})
    assert "/api/v1/admin/readiness" not in create_app(settings).openapi()["paths"]
    assert "/api/v1/admin/readiness" in create_app(load_settings()).openapi()["paths"]


async def test_breaker_transitions_are_published_as_breaker_events(
    client: httpx.AsyncClient,
) -> None:
    settings = load_settings()
    for _ in range(settings.breaker_min_calls):
        await client.get("/api/v1/demo/flaky", params={"failure_rate": 1})
    refused = await client.get("/api/v1/demo/flaky", params={"failure_rate": 0})
    assert refused.status_code == 503
    for _ in range(50):  # published from a task of its own, after the request
        history = (await client.get("/api/v1/events", params={"topic": "breaker.*"})).json()
        if history["items"]:
            break
        await asyncio.sleep(0.02)
    [event] = history["items"]
    assert event["topic"] == "breaker.flaky"
    assert event["data"]["from_state"] == "closed"
    assert event["data"]["to_state"] == "open"
    assert event["data"]["failure_rate"] == 1.0
    breakers = (await client.get("/api/v1/resilience")).json()["breakers"]
    flaky = next(b for b in breakers if b["name"] == "flaky")
    assert flaky["state"] == "open"
    assert flaky["rejected"] == 1
    # Clients cannot forge one.
    forged = await client.post("/api/v1/events", json={"topic": "breaker.flaky", "data": {}})
    assert forged.status_code == 403


async def test_the_event_loop_lag_is_exported(client: httpx.AsyncClient) -> None:
    await asyncio.sleep(1.1)
    metrics = (await client.get("/metrics")).text
    [line] = [ln for ln in metrics.splitlines() if ln.startswith("event_loop_lag_seconds")]
    assert 0 <= float(line.split()[-1]) < 5


def _ids(stream: str, event: str) -> list[str]:
    """The ids of the `event` events in a WHATWG event stream's text."""
    ids = []
    for block in re.split(r"\r?\n\r?\n", stream):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields.get("event") == event:
            ids.append(fields["id"])
    return ids


async def test_a_ticker_resumes_after_its_last_event_id_and_ends_with_204(
    client: httpx.AsyncClient,
) -> None:
    url = "/api/v1/sse/stream"
    resumed = await client.get(
        url, params={"interval": 0.05, "count": 4, "handle": "true"}, headers={"Last-Event-ID": "2"}
    )
    assert _ids(resumed.text, "tick") == ["3", "4"]
    assert _ids(resumed.text, "stream") == ["2"]  # where it starts: the id a client resends
    assert '"resumed_after":2' in resumed.text
    over = await client.get(url, params={"count": 4}, headers={"Last-Event-ID": "4"})
    assert over.status_code == 204  # EventSource stops reconnecting
    # An id that is not a tick number starts from the first tick.
    fresh = await client.get(
        url, params={"interval": 0.05, "count": 1}, headers={"Last-Event-ID": "17-3"}
    )
    assert _ids(fresh.text, "tick") == ["1"]
    missing = await client.post(f"{url}/no-such-stream/drop")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("last_event_id", "after"),
    [(None, 0), ("0", 0), ("41", 41), ("17-3", 0), ("٣", 0), ("-1", 0), ("1" * 64, 0)],
)
def test_only_a_tick_number_places_a_resume(last_event_id: str | None, after: int) -> None:
    assert resume_after(last_event_id) == after
