"""The documentation pages in real Chromium: they render, and load nothing from another
origin (ReDoc's menu logo came from its maker's CDN, which the page's policy refused: a console
error on every load of /redoc)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import playwright_sync, watch
from tests.live_server import LiveServer


@pytest.mark.parametrize(
    ("path", "ready"), [("/redoc", "text=API docs by Redocly"), ("/docs", ".swagger-ui .info")]
)
def test_the_docs_render_from_this_origin_only(
    browser: playwright_sync.Browser, live_server: LiveServer, path: str, ready: str
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    console = watch(page, live_server.base_url)
    page.goto(live_server.base_url + path)
    page.wait_for_selector(ready)
    page.wait_for_load_state("networkidle")
    if path == "/redoc":
        logo = page.locator("img[alt='redocly logo']")
        assert logo.get_attribute("src") == "/static/app/console/favicon.svg"
    context.close()
    console.assert_clean()
