"""Snapshots through real server processes: SIGTERM round trip, SIGKILL mid-snapshot, a corrupt
file, and two processes on one path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.helpers import AUTH, USERS, admin_headers
from tests.live_server import ROOT, TEST_ENV, free_port, start_server


def _users(http: httpx.Client) -> list[dict[str, object]]:
    items: list[dict[str, object]] = http.get(USERS, params={"limit": 100}).json()["items"]
    return items


def test_data_and_logouts_survive_a_restart_with_the_same_ids_and_etags(tmp_path: Path) -> None:
    snapshot = tmp_path / "data" / "snapshot.json"
    snapshot.parent.mkdir()
    env = {"APP_SNAPSHOT_PATH": str(snapshot)}
    server = start_server(tmp_path / "first.log", env)
    with httpx.Client(base_url=server.base_url) as http:
        for i in range(3):
            http.post(
                USERS,
                json={"email": f"keep{i}@example.com", "name": f"K{i}", "password": "password123"},
            )
        admin = admin_headers(http)
        http.patch(f"{USERS}/2", json={"name": "Renamed"}, headers=admin)
        http.delete(f"{USERS}/3", headers=admin)
        before = _users(http)
        etags = {u["id"]: http.get(f"{USERS}/{u['id']}").headers["etag"] for u in before}
        # A logged-out token must stay out after the restart, as its account stays in.
        logged_out = admin_headers(http)
        assert http.post(f"{AUTH}/logout", headers=logged_out).status_code == 204
        assert http.get(f"{AUTH}/me", headers=logged_out).status_code == 401
        kept = admin_headers(http)
    assert server.stop() in (0, -signal.SIGTERM)
    assert "snapshot_written" in server.log_text()

    again = start_server(tmp_path / "second.log", env)
    try:
        with httpx.Client(base_url=again.base_url) as http:
            assert _users(http) == before
            for user_id, etag in etags.items():
                assert http.get(f"{USERS}/{user_id}").headers["etag"] == etag
            created = http.post(
                USERS, json={"email": "after@example.com", "name": "A", "password": "password123"}
            )
            assert created.json()["id"] == 5  # after the highest id ever given, 4
            # The admin from the snapshot is kept, not created twice.
            found = http.get(
                USERS, params={"email": "admin@example.com"}, headers=admin_headers(http)
            ).json()
            assert found["total"] == 1
            assert http.get(f"{AUTH}/me", headers=logged_out).status_code == 401
            assert http.get(f"{AUTH}/me", headers=kept).status_code == 200
    finally:
        again.stop()


def test_sigkill_during_periodic_snapshots_never_leaves_a_broken_file(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.json"
    env = {"APP_SNAPSHOT_PATH": str(snapshot), "APP_SNAPSHOT_INTERVAL_SECONDS": "0.05"}
    server = start_server(tmp_path / "first.log", env)
    with httpx.Client(base_url=server.base_url) as http:
        for i in range(40):
            http.post(
                USERS,
                json={"email": f"k{i}@example.com", "name": "x" * 90, "password": "password123"},
            )
    time.sleep(0.3)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    again = start_server(tmp_path / "second.log", env)
    try:
        with httpx.Client(base_url=again.base_url) as http:
            total = http.get(USERS).json()["total"]
        assert total >= 2  # a complete snapshot from some moment, whichever it was
        assert "snapshot_loaded" in again.log_text()
    finally:
        again.stop()


def _start_expecting_failure(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **TEST_ENV, "APP_PORT": str(free_port()), **env}
    return subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_corrupt_snapshot_stops_start_up_and_is_not_overwritten(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_bytes(b'{"format": "resilient-api.snapshot", "vers')
    result = _start_expecting_failure({"APP_SNAPSHOT_PATH": str(snapshot)})
    assert result.returncode != 0
    assert str(snapshot) in result.stderr
    assert "APP_SNAPSHOT_ON_CORRUPT" in result.stderr
    assert snapshot.read_bytes() == b'{"format": "resilient-api.snapshot", "vers'


def test_a_second_process_on_the_same_path_refuses_to_start(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.json"
    server = start_server(tmp_path / "first.log", {"APP_SNAPSHOT_PATH": str(snapshot)})
    try:
        result = _start_expecting_failure({"APP_SNAPSHOT_PATH": str(snapshot)})
        assert result.returncode != 0
        assert "another process" in result.stderr
        with httpx.Client(base_url=server.base_url) as http:
            assert http.get("/ready").status_code == 200
    finally:
        server.stop()
