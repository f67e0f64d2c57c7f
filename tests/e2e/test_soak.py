"""The soak's smoke version: 10 s of the mixed workload in bench/soak.py against a real server."""

from __future__ import annotations

import asyncio

from bench.soak import soak
from tests.live_server import LiveServer


def test_ten_seconds_of_mixed_load_give_no_unexpected_5xx_and_flat_memory(
    live_server: LiveServer,
) -> None:
    report = asyncio.run(
        soak(
            live_server.base_url, live_server.process.pid, seconds=10, max_requests=50_000, warmup=3
        )
    )
    print(report.table())
    assert not report.unexpected_5xx, report.unexpected_5xx[:5]
    assert report.provoked_5xx >= 5  # the deliberate faults did happen
    assert report.sse_events > 0
    assert report.ws_messages > 0
    assert report.requests > 1000
    assert report.rss_growth < 0.10, report.table()
