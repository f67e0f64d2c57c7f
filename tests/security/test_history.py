"""The event history costs what its bytes bound says, and reading it costs at most a page's
bytes: events are kept and served as the JSON they were published as, never parsed again.

The review's N9 (memory store): 600 events of 16 KB `[{},...]` held 200 MB while the bus
reported 8.4 MB, since each parsed `{}` costs ~24 times its two bytes. N4 (Redis store): an
anonymous `GET /events?limit=1000` decoded the whole stream (RSS 185 -> 539 MB), and 8 such reads
stalled the loop until other Redis calls missed their deadline and opened the events breaker.
"""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import ServerFactory
from tests.live_server import LiveServer
from tests.redis_server import RedisServer
from tests.security.defaults import SHIPPED_BOUNDS, breaker_states, live_loop_lag
from tests.security.test_memory import rss_mib

# 16 KB of empty objects: the costliest JSON per byte to parse.
BLOATED = "[" + ",".join(["{}"] * 5400) + "]"
EVENTS = "/api/v1/events"


async def _publish(base_url: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one() -> None:
            # A 503 with Retry-After is how a busy store says "later": publish again, as a
            # client should (this only fills the history the tests read).
            for _ in range(50):
                response = await client.post(
                    EVENTS,
                    content='{"topic": "bloat.x", "data": ' + BLOATED + "}",
                    headers={"Content-Type": "application/json"},
                )
                if response.status_code != 503:
                    break
                assert "retry-after" in response.headers
                await asyncio.sleep(0.1)
            assert response.status_code == 202, response.text

        for start in range(0, count, 20):
            await asyncio.gather(*(one() for _ in range(start, min(count, start + 20))))


def test_the_memory_history_holds_its_bytes_not_their_parsed_size(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(SHIPPED_BOUNDS)
    pid = server.process.pid
    baseline = rss_mib(pid)
    asyncio.run(_publish(server.base_url, 600))
    grown = rss_mib(pid) - baseline
    health = httpx.get(server.base_url + "/health/detailed", timeout=10).json()["checks"]
    bus = next(check["detail"] for check in health if check["name"] == "event_bus")
    print(f"RSS grew {grown:.1f} MiB for 600 x 16 KB events; the bus reports {bus}")
    assert grown < 40  # parsed, the same events took 200 MB


def test_a_history_read_is_bounded_by_bytes_and_parses_nothing(
    server_factory: ServerFactory, redis_server: RedisServer
) -> None:
    redis_server.flush()
    server: LiveServer = server_factory(
        {**SHIPPED_BOUNDS, "APP_STORE": "redis", "APP_REDIS_URL": redis_server.url}
    )
    # 300 events of 16 KB: 5 MB of history, far past a page's 1 MiB. Decoded whole (the bug),
    # 1,000 of them cost 350 MB a read, so 300 cost about 100 MB, and 8 reads would show it.
    asyncio.run(_publish(server.base_url, 300))
    pid = server.process.pid
    baseline = rss_mib(pid)

    async def read_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            return await asyncio.gather(
                *(client.get(EVENTS, params={"limit": 1000}) for _ in range(8))
            )

    responses = asyncio.run(read_all())
    grown = rss_mib(pid) - baseline
    print(f"RSS grew {grown:.1f} MiB for 8 reads of the whole history")
    for response in responses:
        assert response.status_code == 200
        page = response.json()
        assert page["truncated"] is True
        # The newest events that fit in 1 MiB of data (64 of 16 KB), oldest first.
        assert 50 <= len(page["items"]) <= 64
        assert len(response.content) < 1_100_000
        ids = [item["id"] for item in page["items"]]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert grown < 60
    assert breaker_states(server.base_url)["events"] == "closed"
    live_loop_lag(server.base_url)  # answers 200 (no time bound: a busy machine must not fail it)
    # A small page is whole: no flag, the newest three.
    small = httpx.get(server.base_url + EVENTS, params={"limit": 3}, timeout=10).json()
    assert (len(small["items"]), small["truncated"]) == (3, False)
