"""The rate-limit panel in real Chromium: a burst drains the quota the server reports, and the
429 shows Retry-After counting down. A server of its own, with a quota of 10 a minute, so the
burst cannot starve the other panels' tests."""

from __future__ import annotations

import re

from tests.browser.conftest import Console

SERVER_ENV = {"APP_RATE_LIMIT_REQUESTS": "10", "APP_RATE_LIMIT_WINDOW_SECONDS": "60"}
EXPECTED_ERRORS = ("status of 429 (Too Many Requests)",)


def test_a_burst_drains_the_quota_and_the_429_counts_down(console_page: Console) -> None:
    page = console_page.open().page
    page.fill("#rl-count", "3")
    page.click("#rl-fire")
    page.wait_for_selector("#rl-ok:text('3')")
    # What the last answer said is left (the page's own event stream took one request; static
    # files, probes, /metrics and /resilience are exempt), drawn as text and as the meter.
    left_text = page.locator("#rl-left").inner_text()
    match = re.fullmatch(r"(\d+) of 10 left", left_text)
    assert match, left_text
    left = int(match.group(1))
    assert 5 <= left <= 7
    assert page.locator("#rl-meter").evaluate("m => [m.value, m.max]") == [left, 10]

    page.fill("#rl-count", "12")
    page.click("#rl-fire")
    page.wait_for_selector("#rl-fire:not([disabled])")
    ok = int(page.locator("#rl-ok").inner_text())
    refused = int(page.locator("#rl-refused").inner_text())
    assert ok + refused == 15
    assert ok - 3 in (left, left + 1)  # a token may refill during the burst (one per 6 s)
    assert page.locator("#rl-meter").evaluate("m => m.value") == 0
    first = page.locator("#rl-retry").inner_text()
    assert first.startswith("429 Too Many Requests: Retry-After ")
    seconds = int(first.split("Retry-After ")[1].removesuffix(" s"))
    page.wait_for_function(
        f"() => !document.getElementById('rl-retry').textContent.includes('After {seconds} s')"
    )
    later = page.locator("#rl-retry").inner_text()
    assert later == f"429 Too Many Requests: Retry-After {seconds - 1} s"
    console_page.shoot("rate-limit", "#rate-limit")

    # Once Retry-After has passed the warning goes, and the next request is served.
    page.wait_for_selector("#rl-retry[data-state=refilled]", timeout=(seconds + 5) * 1000)
    assert page.locator("#rl-retry").inner_text() == ""
    assert page.locator("#rl-left").inner_text() == "refilled: at least 1 left"
    page.fill("#rl-count", "1")
    page.click("#rl-fire")
    page.wait_for_selector(f"#rl-ok:text('{ok + 1}')")
    assert page.locator("#rl-retry").inner_text() == ""
    assert page.get_attribute("#rl-retry", "data-state") is None
