"""Headers that keep answers out of caches, sniffers and frames; docs from this origin only."""

from __future__ import annotations

import asyncio
import re

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer


def test_a_token_answer_is_never_cached(http: httpx.Client) -> None:
    response = http.post(
        "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def test_every_answer_forbids_content_sniffing(http: httpx.Client) -> None:
    for path in ("/", "/live", "/api/v1/users", "/no-such-path", "/docs"):
        assert http.get(path).headers["x-content-type-options"] == "nosniff", path


def test_the_docs_load_only_from_this_origin_and_cannot_be_framed(http: httpx.Client) -> None:
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        response = http.get(page)
        assert response.status_code == 200
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
        assert response.headers["x-frame-options"] == "DENY"
        assert not re.search(r"(src|href)=\"https?://", response.text), page
        for asset in re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", response.text):
            assert http.get(asset).status_code == 200, asset


def test_the_console_is_served_only_as_a_page_with_its_headers(http: httpx.Client) -> None:
    # The review's N13: the static copy of the console had no CSP and could be framed.
    assert http.get("/static/app/console/index.html").status_code == 404
    assert http.get("/static/app/console/main.js").status_code == 200
    page = http.get("/", headers={"Accept": "text/html"})
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


def test_a_host_the_service_is_not_served_under_is_refused(
    http: httpx.Client, live_server: LiveServer
) -> None:
    # The review's N15: DNS rebinding passed the WebSocket Origin check, judged from Host.
    rebound = {"Host": "attacker.example:8000"}
    refused = http.get("/api/v1/users", headers=rebound)
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert http.get("/live", headers=rebound).status_code == 200  # kubelets use pod IPs
    url = live_server.base_url.replace("http", "ws") + "/api/v1/ws/chat?room=r&name=n"

    async def handshake() -> int:
        try:
            async with connect(
                url, origin=Origin("http://attacker.example:8000"), additional_headers=rebound
            ):
                return 101
        except InvalidStatus as refused_handshake:
            return refused_handshake.response.status_code

    assert asyncio.run(handshake()) == 403
