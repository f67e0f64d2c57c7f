"""Headers that keep answers out of caches, sniffers and frames; docs from this origin only."""

from __future__ import annotations

import re

import httpx

from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD


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
