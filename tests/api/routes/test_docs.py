"""The documentation pages in process: every page and asset they name is served from this
origin, under a policy that allows scripts from this origin only (the redirect page's one
inline script by its hash), and no page is ever served as a bare static file."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_a_docs_page_loads_only_what_this_origin_serves(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert assets
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not from this origin"
        assert (await client.get(asset)).status_code == 200, asset


async def test_redocs_bundle_names_no_cdn(client: httpx.AsyncClient) -> None:
    bundle = await client.get("/static/vendor/redoc.standalone.js")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"cdn.redoc.ly" not in bundle.content


async def test_the_oauth2_redirect_allows_exactly_its_own_inline_script(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs/oauth2-redirect")
    script = re.search(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in response.headers["content-security-policy"]


async def test_html_is_never_served_as_a_static_file(client: httpx.AsyncClient) -> None:
    # The console's page is a file here, but only `/` serves it, with its policy.
    assert (await client.get("/static/app/console/main.js")).status_code == 200
    assert (await client.get("/static/app/console/index.html")).status_code == 404
