"""The routes the console provokes behaviour with: a slow subscriber the bus drops events for,
and CPU work on the event loop. Bounded, honest about what they did, and absent in production."""

from __future__ import annotations

import httpx
import pytest

from app.api.routes import lab
from app.core.config import load_settings
from app.main import create_app

SLOW = "/api/v1/demo/slow-subscriber"
ON_LOOP = "/api/v1/demo/cpu-on-loop"


def _dropped(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("events_dropped_total{")
    )


async def test_a_burst_overflows_the_slow_subscriber_and_every_loss_is_reported(
    client: httpx.AsyncClient,
) -> None:
    before = _dropped((await client.get("/metrics")).text)
    answer = await client.post(SLOW, json={"events": 50, "queue": 5, "read_every_ms": 5})
    assert answer.status_code == 200
    result = answer.json()
    assert result["published"] == 50
    assert result["dropped"] > 0
    assert result["delivered"] + result["dropped"] == 50  # none lost in silence
    assert result["never_arrived"] == 0
    assert sum(gap["dropped"] for gap in result["gaps"]) == result["dropped"]
    assert "Last-Event-ID" in result["gaps"][0]["detail"]
    after = _dropped((await client.get("/metrics")).text)
    assert after - before == result["dropped"]
    # The events are the bus's own: the history has them, ids and all.
    history = (await client.get("/api/v1/events", params={"topic": lab.SLOW_TOPIC})).json()
    assert history["items"][-1]["id"] == result["last_id"]


async def test_a_queue_large_enough_loses_nothing(client: httpx.AsyncClient) -> None:
    result = (await client.post(SLOW, json={"events": 8, "queue": 10})).json()
    assert (result["delivered"], result["dropped"], result["gaps"]) == (8, 0, [])


@pytest.mark.parametrize(
    "body",
    [
        {"events": 501},
        {"events": 0},
        {"queue": 65},
        {"read_every_ms": 51},
        {"events": "10"},
        {"events": 10, "extra": 1},
    ],
)
async def test_out_of_range_bursts_are_refused_and_publish_nothing(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    answer = await client.post(SLOW, json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    history = (await client.get("/api/v1/events", params={"topic": lab.SLOW_TOPIC})).json()
    assert history["items"] == []


async def test_on_loop_work_answers_then_rests_as_long_as_it_held_the_loop(
    client: httpx.AsyncClient,
) -> None:
    lab._loop_duty.free_at = 0.0  # another test in this process may have run one
    first = await client.post(ON_LOOP, json={"samples": 20_000_000, "seed": 1})
    assert first.status_code == 200
    body = first.json()
    assert abs(body["pi_estimate"] - 3.14159) < 0.01
    assert body["loop_blocked_ms"] >= body["elapsed_ms"]
    # Straight after, the loop is owed as much time as it was held: refused, with a wait.
    second = await client.post(ON_LOOP, json={"samples": 1_000})
    assert second.status_code == 503
    assert second.json()["type"] == "/problems/overloaded"
    assert int(second.headers["retry-after"]) >= 1
    for bad in ({"samples": 50_000_001}, {"samples": 999}, {"samples": 1e6}):
        assert (await client.post(ON_LOOP, json=bad)).status_code == 422


def test_production_mounts_neither_route() -> None:
    production = load_settings().model_copy(update={"env": "production"})
    paths = create_app(production).openapi()["paths"]
    assert SLOW not in paths
    assert ON_LOOP not in paths
    development = create_app(load_settings()).openapi()["paths"]
    assert {SLOW, ON_LOOP} <= set(development)
