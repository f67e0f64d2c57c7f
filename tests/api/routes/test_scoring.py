"""The scoring routes' contract, in process (with a real worker process): a result ranked by
score, bad input refused with 422 before any work, and a job only its submitter can follow."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD

SCORING = "/api/v1/scoring"
BODY: dict[str, Any] = {
    "records": [
        {"id": "courier-a", "features": {"speed": 3, "cost": 10}},
        {"id": "courier-b", "features": {"speed": 5, "cost": 30}},
        {"id": "courier-c", "features": {"speed": 4, "cost": 20}},
    ],
    "weights": {"speed": 1, "cost": -0.5},
    "method": "minmax",
    "top_k": 2,
}


async def test_records_come_back_ranked_best_first_with_statistics(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(SCORING, json=BODY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3
    assert [r["rank"] for r in body["results"]] == [1, 2]  # top_k
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert body["statistics"]["speed"]["max"] == 5
    assert body["statistics"]["cost"]["mean"] == 20


async def test_bad_input_is_a_422_problem_naming_what_is_wrong(client: httpx.AsyncClient) -> None:
    malformed = await client.post(SCORING, content=b"{not json")
    unknown_weight = await client.post(SCORING, json={**BODY, "weights": {"height": 1}})
    as_string = await client.post(
        SCORING,
        json={**BODY, "records": [{"id": "a", "features": {"speed": "1.5"}}]},
    )
    for response in (malformed, unknown_weight, as_string):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert "height" in unknown_weight.text


async def test_a_job_is_followed_at_its_location_by_its_submitter_only(
    client: httpx.AsyncClient,
) -> None:
    accepted = await client.post(f"{SCORING}/jobs", json=BODY)
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["location"]
    assert accepted.json()["location"] == location
    for _ in range(400):
        state = (await client.get(location)).json()
        if state["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.05)
    assert state["status"] == "done", state
    assert state["progress"] == 1.0
    assert [r["id"] for r in state["result"]["results"]] == ["courier-b", "courier-c"]
    # Someone else (here, a signed-in client rather than this address) is told nothing.
    token = (
        await client.post(
            "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
    ).json()["access_token"]
    other = await client.get(location, headers={"Authorization": f"Bearer {token}"})
    assert other.status_code == 404
    assert (await client.get(f"{SCORING}/jobs/no-such-job")).status_code == 404


async def test_the_cpu_demo_names_the_worker_that_computed_it(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/cpu-intensive", json={"samples": 10_000, "seed": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["samples"] == 10_000
    assert abs(body["pi_estimate"] - 3.14159) < 0.1
    assert body["worker_pid"] != body["server_pid"]
    too_many = await client.post("/api/v1/cpu-intensive", json={"samples": 10**9})
    assert too_many.status_code == 422
