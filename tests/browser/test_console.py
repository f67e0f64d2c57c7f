"""The learner's console in real Chromium against a real server: each panel's main
interaction, with no console error and no request leaving the server's origin.

The breaker reopens after 2 s and the request timeout is 3 s here, so the recoveries and the
504 happen within a test's time.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.browser.conftest import Console
from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer

SERVER_ENV = {
    "APP_BREAKER_OPEN_SECONDS": "2",
    "APP_REQUEST_TIMEOUT_SECONDS": "3",
    "APP_PROCESS_POOL_WORKERS": "1",
    "APP_SCORING_JOB_CHUNK_RECORDS": "2000",
    # The CPU panel's job is validated in a worker: one importing numpy at the first task
    # could outlast the 3 s timeout on a busy machine.
    "APP_PROCESS_POOL_WARM_UP": "true",
}
# Chromium logs every answer of 400 or more as a console error: these are the ones the panels
# ask for on purpose (the flaky demo's 500s, the open breaker's 503s, the timeout's 504).
EXPECTED_ERRORS = (
    "status of 500 (Internal Server Error)",
    "status of 503 (Service Unavailable)",
    "status of 504 (Gateway Timeout)",
)


def test_the_page_loads_whole_and_every_probe_is_lit(console_page: Console) -> None:
    console = console_page.open()
    page = console.page
    for probe in ("live", "ready", "health"):
        light = page.locator(f"#probe-lights [data-probe={probe}]")
        assert light.inner_text() == f"✓ {probe}: ok"
    # Every breaker group is listed from the start, closed.
    states = page.locator("#br-table tr").evaluate_all("rows => rows.map(r => r.dataset.state)")
    assert len(states) >= 6
    assert set(states) == {"closed"}
    assert page.locator("#to-limit").inner_text() == "3"
    console.shoot("console")


def test_the_timeout_panel_shows_the_504_at_the_limit(console_page: Console) -> None:
    page = console_page.open().page
    page.fill("#to-delay", "0.2")
    page.click("#to-run")
    page.wait_for_selector("#to-result[data-status='200']")
    page.fill("#to-delay", "5")
    page.click("#to-run")
    # While the learner waits, the elapsed time counts up beside the limit.
    page.wait_for_function(
        "() => Number(document.getElementById('to-elapsed').dataset.seconds) >= 1"
    )
    assert page.locator("#to-result").inner_text().startswith("Waiting for a 5 s call")
    page.wait_for_selector("#to-result[data-status='504']")
    assert page.locator("#to-result").inner_text().startswith("timed out (504) after 3.")
    assert float(page.get_attribute("#to-elapsed", "data-seconds") or 0) >= 3
    console_page.shoot("timeout", "#timeout")


def test_the_breaker_panel_opens_the_flaky_breaker_then_sees_it_close(
    console_page: Console,
) -> None:
    page = console_page.open().page
    flaky = page.locator("#br-table tr[data-breaker=flaky]")
    page.locator("#br-rate").fill("1")
    page.fill("#br-count", "12")
    page.click("#br-send")
    page.wait_for_selector("#br-table tr[data-breaker=flaky][data-state=open]")
    assert "open" in flaky.inner_text()
    # The transition arrived over SSE as a breaker.flaky event.
    page.wait_for_selector("#br-events li[data-to=open]")
    assert "flaky: closed → open" in page.locator("#br-events").inner_text()
    console_page.shoot("breakers-open", "#breakers")

    page.locator("#br-rate").fill("0")
    page.wait_for_timeout(2_100)  # the breaker's open period
    page.fill("#br-count", "5")
    page.click("#br-send")
    page.wait_for_selector("#br-table tr[data-breaker=flaky][data-state=closed]")
    page.wait_for_selector("#br-events li[data-to=closed]")
    log = page.locator("#br-events").inner_text()
    assert "flaky: open → half_open" in log
    assert "flaky: half_open → closed" in log
    console_page.shoot("breakers-closed", "#breakers")


def test_the_sse_panel_resumes_after_the_server_drops_it_with_no_tick_lost(
    console_page: Console,
) -> None:
    page = console_page.open().page
    page.click("#sse-start")
    page.wait_for_function("() => Number(document.getElementById('sse-last').textContent) >= 3")
    page.click("#sse-drop")
    # EventSource waits the server's retry (3 s), reconnects with Last-Event-ID, and the ticks
    # go on after the last one it saw.
    page.wait_for_function(
        "() => document.getElementById('sse-reconnects').textContent === '1'", timeout=15_000
    )
    before = int(page.locator("#sse-last").inner_text())
    page.wait_for_function(
        f"() => Number(document.getElementById('sse-last').textContent) >= {before + 3}"
    )
    assert page.locator("#sse-missed").inner_text() == "0"
    assert page.locator("#sse-log .resume").count() == 1
    ticks = page.locator("#sse-log li[data-n]").evaluate_all(
        "items => items.map(i => Number(i.dataset.n)).reverse()"
    )
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))  # contiguous across the drop
    console_page.shoot("sse", "#sse")
    page.click("#sse-stop")


def test_two_chat_members_talk_and_a_broken_rule_closes_with_its_code(
    console_page: Console,
) -> None:
    page = console_page.open().page
    ann = page.locator("[data-member=ann]")
    bob = page.locator("[data-member=bob]")
    ann.get_by_role("button", name="Connect").click()
    page.wait_for_selector("[data-status=ann]:text('online')")
    bob.get_by_role("button", name="Connect").click()
    page.wait_for_selector("[data-status=bob]:text('online')")
    ann.get_by_label("ann's message", exact=True).fill("hello bob")
    ann.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_selector("[data-log=bob] li:text('ann: hello bob')")
    bob.get_by_label("Send only to ann").check()
    bob.get_by_label("bob's message", exact=True).fill("psst")
    bob.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_selector("[data-log=ann] li:text('bob → ann: psst')")
    console_page.shoot("chat", "#chat")
    ann.get_by_role("button", name="Send a frame too large").click()
    page.wait_for_selector("[data-log=ann] li.close:text('closed 1009')")
    page.wait_for_selector("[data-log=bob] li:text('ann left')")
    bob.get_by_role("button", name="Send too fast").click()
    page.wait_for_selector("[data-log=bob] li.close:text('closed 1008')")


def test_the_event_bus_panel_delivers_what_matches_its_pattern(console_page: Console) -> None:
    page = console_page.open().page
    page.fill("#bus-pattern", "demo.*")
    page.click("#bus-subscribe")
    page.wait_for_selector("#bus-state[data-pattern='demo.*']")
    page.wait_for_timeout(300)  # the stream is open once its first bytes arrive
    page.fill("#bus-topic", "demo.hello")
    page.click("#bus-form button[type=submit]")
    page.wait_for_selector("#bus-log li[data-topic='demo.hello']")
    page.fill("#bus-topic", "other.topic")
    page.click("#bus-form button[type=submit]")
    page.wait_for_selector("#bus-result:text('on other.topic')")
    page.fill("#bus-topic", "demo.again")
    page.click("#bus-form button[type=submit]")
    page.wait_for_selector("#bus-log li[data-topic='demo.again']")
    topics = page.locator("#bus-log li[data-topic]").evaluate_all(
        "items => items.map(i => i.dataset.topic)"
    )
    assert topics == ["demo.again", "demo.hello"]  # newest first; other.topic never matched
    assert page.locator("#bus-delivered").inner_text() == "2"
    console_page.shoot("bus", "#bus")


def test_data_that_is_not_json_is_refused_visibly_and_not_published(
    console_page: Console,
) -> None:
    page = console_page.open().page
    page.fill("#bus-topic", "demo.text")
    page.fill("#bus-data", "hello world")
    page.click("#bus-form button[type=submit]")
    page.wait_for_selector("#bus-result:text('Not published: the data is not JSON')")
    assert page.get_attribute("#bus-data", "aria-invalid") == "true"
    history = page.evaluate("fetch('/api/v1/events?topic=demo.text').then(r => r.json())")
    assert history["items"] == []  # nothing was sent as a string behind the learner's back
    page.fill("#bus-data", '"hello world"')
    page.click("#bus-form button[type=submit]")
    page.wait_for_selector("#bus-result:text('on demo.text')")
    assert page.get_attribute("#bus-data", "aria-invalid") is None


def test_a_scoring_job_fills_its_bar_while_the_loop_stays_free(console_page: Console) -> None:
    page = console_page.open().page
    page.fill("#cpu-records", "20000")
    page.click("#cpu-submit")
    page.wait_for_selector("#cpu-status[data-status=done]", timeout=60_000)
    assert page.locator("#cpu-progress").evaluate("bar => bar.value") == 1
    assert page.locator("#cpu-status").inner_text() == "done, 100%"
    page.wait_for_function(
        "() => document.getElementById('cpu-lag-out').textContent.endsWith(' ms')"
    )
    lag = float(page.locator("#cpu-lag-out").inner_text().removesuffix(" ms"))
    assert lag < 1000  # generous: the loop was never held for long
    page.click("#cpu-blocking")
    page.wait_for_selector("#cpu-blocking-out:text('it stayed free')", timeout=20_000)
    console_page.shoot("cpu", "#cpu")


def test_the_cache_panel_counts_a_miss_then_hits(console_page: Console) -> None:
    page = console_page.open().page
    page.click("#cache-user")
    page.wait_for_selector("#cache-result:text('Signed in as')")

    def counts() -> tuple[int, int]:
        return (
            int(page.locator("#cache-hits").inner_text()),
            int(page.locator("#cache-misses").inner_text()),
        )

    page.wait_for_timeout(2_200)  # one /metrics scrape after signing in
    hits, misses = counts()
    for _ in range(3):
        page.click("#cache-read")
        page.wait_for_selector("#cache-result:text('Read ')")
    page.wait_for_function(
        f"() => Number(document.getElementById('cache-hits').textContent) >= {hits + 2}",
        timeout=10_000,
    )
    assert counts()[1] >= misses
    page.click("#cache-write")
    page.wait_for_selector("#cache-result:text('Renamed to')")
    console_page.shoot("cache", "#cache")


def test_draining_readiness_turns_ready_off_and_back_on(
    console_page: Console, live_server: LiveServer
) -> None:
    page = console_page.open().page
    page.fill("#drain-email", ADMIN_EMAIL)
    page.fill("#drain-password", ADMIN_PASSWORD)
    page.click("#drain-form button[type=submit]")
    page.wait_for_selector("#drain-toggle:not([disabled])")
    page.click("#drain-toggle")
    page.wait_for_selector("#drain-toggle[aria-pressed=true]")
    assert httpx.get(live_server.base_url + "/ready").status_code == 503
    assert httpx.get(live_server.base_url + "/live").status_code == 200
    page.wait_for_selector("#probe-lights [data-probe=ready].fail")
    assert page.locator("#probe-lights [data-probe=ready]").inner_text() == "✗ ready: fail"
    console_page.shoot("probes-drained", "#probes")
    page.click("#drain-toggle")
    page.wait_for_selector("#drain-toggle[aria-pressed=false]")
    assert httpx.get(live_server.base_url + "/ready").status_code == 200
    page.wait_for_selector("#probe-lights [data-probe=ready].ok")


def test_request_rate_and_p99_are_drawn_from_metrics(console_page: Console) -> None:
    page = console_page.open().page
    page.wait_for_function(
        "() => /^\\d+(\\.\\d+)? ms$/.test(document.getElementById('m-p99').textContent)",
        timeout=10_000,
    )
    assert float(page.locator("#m-rate").inner_text()) > 0  # the console's own polling
    assert page.locator("#m-chart polyline").count() == 1


@pytest.mark.parametrize("width", [375])
def test_every_control_is_labelled_and_the_page_fits_a_phone(
    console_page: Console, width: int
) -> None:
    page = console_page.page
    page.set_viewport_size({"width": width, "height": 800})
    console_page.open()
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input, button, meter, progress')]
            .filter(el => !(el.getAttribute('aria-label')
              || [...(el.labels || [])].some(l => l.textContent.trim())
              || (el.tagName === 'BUTTON' && el.textContent.trim())))
            .map(el => el.id || el.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # Keyboard: the skip link comes first and every button is reachable by Tab.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    console_page.shoot("phone")


def test_the_page_states_never_rely_on_colour_alone(console_page: Console) -> None:
    page = console_page.open().page
    texts = page.locator("#br-table td.state").all_inner_texts()
    assert texts
    assert all(re.fullmatch(r"● closed", t) for t in texts)
