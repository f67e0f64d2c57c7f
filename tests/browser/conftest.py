"""Playwright for Python driving Debian's Chromium (by its executable path: no browser is ever
downloaded) against a real `python -m app`.

Every page a test opens is watched: a console error, an uncaught exception, or a request to any
origin but the server's fails the test. Screenshots go to `build/screenshots/`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.live_server import ROOT, LiveServer

playwright_sync = pytest.importorskip("playwright.sync_api")
if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / "build" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module. Not per session: Playwright's sync API keeps an
    event loop running in this thread while it is open, and the in-process tests that run next
    in the same worker start loops of their own."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs the Debian package chromium")
        pytest.skip("chromium not installed (Debian package chromium); CI installs it")
    # Chromium refuses to sandbox as root (CI runs as root): the pages are our own.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


@dataclass
class Console:
    """A console page under watch: what went wrong on it is collected for `assert_clean`."""

    page: Page
    origin: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def open(self) -> Console:
        """Load the console as a browser does and wait for every panel to start."""
        self.page.goto(self.origin + "/")
        self.page.wait_for_selector("body[data-ready=true]", timeout=15_000)
        return self

    def shoot(self, name: str, selector: str | None = None) -> Path:
        """A screenshot of the page, or of one panel, in build/screenshots/."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if selector is None:
            self.page.screenshot(path=path, full_page=True)
        else:
            self.page.locator(selector).screenshot(path=path)
        return path

    def assert_clean(self) -> None:
        """No console error, no uncaught exception, no request that left the origin."""
        assert self.errors == [], self.errors
        assert self.foreign == [], self.foreign


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def watch(page: Page, base_url: str, *, expected_errors: tuple[str, ...] = ()) -> Console:
    """Start watching `page` for errors and requests that leave `base_url`'s origin.

    `expected_errors`: substrings of console errors a test provokes on purpose (a 429 the
    rate-limit panel fires, a 504 the timeout panel asks for); anything else is a failure.
    """
    console = Console(page, base_url)
    ws_origin = base_url.replace("http://", "ws://", 1)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not any(e in message.text for e in expected_errors):
            console.errors.append(message.text)

    def check_url(url: str) -> None:
        # data: URLs and this origin's blob: URLs (ReDoc's worker) never leave the page.
        own = url.startswith(("data:", f"blob:{base_url}/"))
        if _origin(url) not in (base_url, ws_origin) and not own:
            console.foreign.append(url)

    page.on("console", on_console)
    page.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
    page.on("request", lambda request: check_url(request.url))
    page.on("websocket", lambda socket: check_url(socket.url))
    return console


@pytest.fixture
def console_page(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Console]:
    """A fresh page on the module's server, checked for errors and foreign requests after the
    test (a module lists the errors it provokes in `EXPECTED_ERRORS`)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    console = watch(
        page, live_server.base_url, expected_errors=getattr(request.module, "EXPECTED_ERRORS", ())
    )
    yield console
    context.close()
    console.assert_clean()
