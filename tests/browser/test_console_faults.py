"""The console's failing-dependency lesson in real Chromium: an admin injects a store outage,
the traffic it sends gets stale reads and refused writes, the dependency table shows the
breaker open and the fault, and everything is fresh again once the fault ends by itself.
A pool outage refuses a scoring job from the CPU step while the API goes on. The users
cache's TTL is 1 s here, so the copy turns stale within the test."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.browser.conftest import Console
from tests.live_server import ADMIN_PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Page

SERVER_ENV = {
    "APP_CACHE_TTL_SECONDS": "1",
    "APP_PROCESS_POOL_WARM_UP": "true",  # a worker to kill from the console
    # The CPU task sent after the kill waits for a new worker to import numpy and pandas: beside
    # another suite on two cores that took longer than the 8 s task limit (a 504, not the 200
    # the lesson shows). The claim is that no request is lost, not how fast a worker starts.
    "APP_REQUEST_TIMEOUT_SECONDS": "60",
    "APP_SCORING_TASK_TIMEOUT_SECONDS": "50",
}
EXPECTED_ERRORS = ("status of 503 (Service Unavailable)",)


def _signed_in(console_page: Console) -> Page:
    """The console, its dependency step signed in as the admin (the drill buttons enabled)."""
    page = console_page.open().page
    page.fill("#dep-password", ADMIN_PASSWORD)
    # Another test may have just drilled the hashing threads: a login is refused (503) until
    # its fault ends and its breaker's probe lets calls through again.
    for _ in range(40):
        page.click("#dep-signin button[type=submit]")
        page.wait_for_selector(
            "#dep-kill-worker:not([disabled]), #dep-result:text('Sign-in refused')"
        )
        if page.locator("#dep-kill-worker").is_enabled():
            return page
        page.wait_for_timeout(500)
    raise AssertionError(page.locator("#dep-result").inner_text())


def _drill(page: Page, target: str, seconds: int) -> None:
    """Inject an outage into `target` from the console's buttons and see it in the table."""
    page.fill("#dep-seconds", str(seconds))
    page.click(f"#dep-faults [data-fault=outage][data-target={target}]")
    page.wait_for_selector(f"#dep-result:text('Injected: outage into {target} for {seconds} s')")
    page.wait_for_selector(f"#dep-table tr[data-dependency={target}] td[data-fault=outage]")


def test_an_injected_outage_is_watched_from_the_console(console_page: Console) -> None:
    page = _signed_in(console_page)
    page.fill("#dep-seconds", "4")
    page.click("#dep-faults [data-fault=outage]")
    page.wait_for_selector("#dep-result:text('Injected: outage into store for 4 s')")
    page.wait_for_selector("#dep-table tr[data-dependency=store] td[data-fault=outage]")
    page.wait_for_timeout(1_100)  # the reader's copy is now past its 1 s TTL
    page.click("#dep-traffic")
    page.wait_for_selector("#dep-result[data-refused]")
    result = page.locator("#dep-result")
    assert int(result.get_attribute("data-stale") or 0) >= 1  # reads answered from the copy
    assert int(result.get_attribute("data-refused") or 0) >= 2  # both writes refused
    assert int(result.get_attribute("data-fresh") or 0) == 0
    page.wait_for_selector("#dep-table tr[data-dependency=store][data-state=open]")
    # The pipeline's counters, read from /metrics: the stale answers it served are counted.
    page.wait_for_function(
        "() => Number(document.querySelector('#dep-counts [data-dependency=store]')"
        "?.dataset.stale) >= 1",
        timeout=10_000,
    )
    console_page.shoot("dependency-fault", "#breakers")
    # The fault ends by itself; the probe half-opens the breaker; fresh traffic closes it.
    page.wait_for_selector("#dep-table tr[data-dependency=store] td[data-fault=none]")

    # (While half-open, only a few trial calls pass: the rest are refused or served stale.)
    def settled() -> bool:
        return (result.get_attribute("data-refused"), result.get_attribute("data-stale")) == (
            "0",
            "0",
        )

    for _ in range(30):
        page.click("#dep-traffic")
        page.wait_for_selector("#dep-traffic:not([disabled])")
        if settled():
            break
        page.wait_for_timeout(300)
    assert settled(), (
        page.locator("#dep-result").inner_text() + page.locator("#dep-table").inner_text()
    )
    assert int(result.get_attribute("data-fresh") or 0) == 22
    page.wait_for_selector("#dep-table tr[data-dependency=store][data-state=closed]")


def test_a_scoring_worker_killed_from_the_console_costs_no_request(
    console_page: Console,
) -> None:
    assert console_page.open().page.locator("#dep-kill-worker").is_disabled()  # admin only
    page = _signed_in(console_page)
    page.click("#dep-kill-worker")
    page.wait_for_selector("#dep-result[data-killed]")
    result = page.locator("#dep-result")
    killed = result.get_attribute("data-killed")
    # The CPU task sent after the kill was answered, by a worker of the replaced pool.
    assert result.get_attribute("data-task") == "200", result.inner_text()
    assert result.get_attribute("data-answered-by") not in ("", killed)
    assert "ran again" in result.inner_text()


def test_hashing_down_refuses_the_sign_ups_and_nothing_else(console_page: Console) -> None:
    page = _signed_in(console_page)
    _drill(page, "hashing", 3)
    page.click("#dep-traffic")
    page.wait_for_selector("#dep-result[data-refused]")
    result = page.locator("#dep-result")
    assert result.get_attribute("data-refused") == "2", result.inner_text()  # the sign-ups
    assert result.get_attribute("data-fresh") == "20"  # the reads never noticed


def test_scoring_workers_down_refuses_cpu_work_and_nothing_else(console_page: Console) -> None:
    page = _signed_in(console_page)
    _drill(page, "process_pool", 5)
    # The CPU step's job is refused at once, with the pipeline's 503 ...
    page.click("#cpu-submit")
    page.wait_for_selector("#cpu-status:text-matches('^503: ')")
    page.wait_for_selector("#cpu-submit:not([disabled])")
    # ... while the API's reads and writes never notice.
    page.click("#dep-traffic")
    page.wait_for_selector("#dep-result[data-refused]")
    result = page.locator("#dep-result")
    assert result.get_attribute("data-refused") == "0", result.inner_text()
    assert result.get_attribute("data-fresh") == "22"
