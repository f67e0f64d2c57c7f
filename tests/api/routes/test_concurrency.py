"""The concurrency demos' contract, in process: concurrent waits take about one wait, a
blocking call in the thread pool leaves the loop ticking, and the bounds are enforced."""

from __future__ import annotations

import httpx


async def test_concurrent_waits_take_about_one_wait(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/async-demo", params={"tasks": 50, "delay": 0.2})
    assert response.status_code == 200
    body = response.json()
    assert body["sequential_would_take"] == 10.0
    # 50 waits of 0.2 s at once: far less than 10 s even on a busy machine.
    assert body["elapsed"] < 5
    assert body["speedup"] > 2


async def test_a_blocking_call_in_the_thread_pool_leaves_the_loop_ticking(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/blocking-demo", params={"delay": 0.3})
    assert response.status_code == 200
    body = response.json()
    assert body["elapsed"] >= 0.3
    assert body["expected_ticks"] == 30
    assert body["loop_ticks"] > 0  # the loop ran while the thread slept


async def test_out_of_range_demos_are_refused(client: httpx.AsyncClient) -> None:
    for url, params in (
        ("/api/v1/async-demo", {"tasks": 1001}),
        ("/api/v1/async-demo", {"delay": 6}),
        ("/api/v1/blocking-demo", {"delay": -1}),
    ):
        response = await client.get(url, params=params)
        assert response.status_code == 422, (url, params)
