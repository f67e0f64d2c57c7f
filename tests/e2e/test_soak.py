"""The soak's smoke version: the mixed workload in bench/soak.py against a real server, for 6 s
(60 s under `make soak`)."""

from __future__ import annotations

import asyncio

import pytest

from bench.soak import soak
from tests.depth import scaled
from tests.live_server import LiveServer

SECONDS = scaled(6, 60)


@pytest.mark.soak
def test_mixed_load_gives_no_unexpected_5xx_and_flat_memory(
    live_server: LiveServer,
) -> None:
    report = asyncio.run(
        soak(
            live_server.base_url,
            live_server.process.pid,
            seconds=SECONDS,
            max_requests=scaled(50_000, 500_000),
            warmup=scaled(2, 5),
        )
    )
    print(report.table())
    assert not report.unexpected_5xx, report.unexpected_5xx[:5]
    assert report.provoked_5xx >= 5  # the deliberate faults did happen
    assert report.sse_events > 0
    assert report.ws_messages > 0
    # It ran (a floor, not a speed: beside another test run it managed 80 a second).
    assert report.requests >= 100
    assert report.rss_growth < 0.10, report.table()
