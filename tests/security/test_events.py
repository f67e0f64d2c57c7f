"""The bus and the jobs: no forged system events, no non-JSON numbers, an audit log that names
who published and stays bounded, and scoring results only for their submitter."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import new_user_with_token
from tests.live_server import LiveServer
from tests.security.defaults import SHIPPED_BOUNDS

SERVER_ENV = {
    **SHIPPED_BOUNDS,
    "APP_AUDIT_LOG_PATH": "{tmp}/audit.jsonl",
    "APP_AUDIT_LOG_MAX_BYTES": "65536",
    "APP_AUDIT_LOG_BACKUPS": "2",
}
EVENTS = "/api/v1/events"


@pytest.mark.parametrize(
    "topic", ["user.deleted", "user.created", "scoring.jobs", "breaker.opened", "system.x"]
)
def test_clients_cannot_publish_the_apps_topics(http: httpx.Client, topic: str) -> None:
    response = http.post(EVENTS, json={"topic": topic, "data": {"id": 1}})
    assert response.status_code == 403
    history = http.get(EVENTS, params={"topic": topic}).json()["items"]
    assert all(event["data"] != {"id": 1} for event in history)


@pytest.mark.parametrize(
    "body",
    [
        b'{"topic": "n.nan", "data": NaN}',
        b'{"topic": "n.inf", "data": {"x": Infinity}}',
        b'{"topic": "n.big", "data": [1e400]}',
        b'{"topic": "n.deep", "data": ' + b"[" * 40 + b"]" * 40 + b"}",
    ],
    ids=["nan", "infinity", "overflow", "too-deep"],
)
def test_numbers_json_cannot_hold_are_refused(http: httpx.Client, body: bytes) -> None:
    response = http.post(EVENTS, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_an_event_over_16_kib_is_refused(http: httpx.Client) -> None:
    response = http.post(EVENTS, json={"topic": "big.one", "data": "x" * 20_000})
    assert response.status_code == 413


def _audit_lines(folder: Path) -> list[dict[str, object]]:
    lines = []
    for path in sorted(folder.glob("audit.jsonl*")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


def test_the_audit_log_keeps_only_the_apps_events_rotates_and_is_private(
    http: httpx.Client, live_server: LiveServer
) -> None:
    folder = live_server.log_path.parent
    # A client's events are never the app's record (the review's N14: an anonymous publisher
    # rotated real audit records out): 240 KB of them write nothing.
    for i in range(220):
        http.post(EVENTS, json={"topic": "orders.bulk", "data": "y" * 1000 + str(i)})
    user, auth = new_user_with_token(http)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        line["topic"] == "user.created" for line in _audit_lines(folder)
    ):
        time.sleep(0.1)  # the writer flushes every half second
    # Flushed since the client's events were published: none of them is there.
    assert not [line for line in _audit_lines(folder) if str(line["topic"]).startswith("orders.")]
    url = f"/api/v1/users/{user['id']}"
    first = http.patch(url, json={"name": "n" * 100}, headers=auth)
    assert first.status_code == 200
    for i in range(800):  # about 250 KB of the app's own events: more than three files hold
        http.patch(url, json={"name": f"{i:03d}" + "n" * 97}, headers=auth)
    expected = ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    deadline = time.monotonic() + 10
    # A rotation renames the files one after another: list them again until they settle.
    files: list[str] = []
    while time.monotonic() < deadline and files != expected:
        files = sorted(p.name for p in folder.glob("audit.jsonl*"))
        time.sleep(0.1)
    assert files == expected
    assert all(p.stat().st_size <= 65_536 + 2048 for p in folder.glob("audit.jsonl*"))
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in folder.glob("audit.jsonl*"))
    time.sleep(1)
    lines = _audit_lines(folder)
    assert not [line for line in lines if str(line["topic"]).startswith("orders.")]
    assert {line["actor"] for line in lines} == {"system"}
    assert any(line["topic"] == "user.updated" for line in lines)
    # The oldest lines were rotated away (two backups): the log stayed bounded.
    assert all(line["data"]["name"] != "n" * 100 for line in lines)  # type: ignore[index]


def test_a_scoring_result_is_read_only_by_its_submitter(http: httpx.Client) -> None:
    _, owner = new_user_with_token(http)
    _, stranger = new_user_with_token(http)
    body = {
        "records": [{"id": str(i), "features": {"x": i}} for i in range(10)],
        "weights": {"x": 1},
    }
    accepted = http.post("/api/v1/scoring/jobs", json=body, headers=owner)
    assert accepted.status_code == 202
    location = accepted.headers["location"]
    assert http.get(location, headers=stranger).status_code == 404
    assert http.get(location).status_code == 404  # no token: the address is another client
    deadline = time.monotonic() + 10
    while http.get(location, headers=owner).json()["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
