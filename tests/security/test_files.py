"""Files private to the service, and no process outliving a killed server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.live_server import start_server


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_snapshot_audit_and_lock_files_are_private(tmp_path: Path) -> None:
    snapshot, audit = tmp_path / "snapshot.json", tmp_path / "audit.jsonl"
    server = start_server(
        tmp_path / "server.log",
        {"APP_SNAPSHOT_PATH": str(snapshot), "APP_AUDIT_LOG_PATH": str(audit)},
    )
    httpx.post(server.base_url + "/api/v1/events", json={"topic": "files.check", "data": 1})
    server.stop()
    for path in (snapshot, audit, tmp_path / "snapshot.json.lock"):
        assert path.exists(), path
        assert (path.stat().st_mode & 0o777) == 0o600, (path, oct(path.stat().st_mode))


def test_pool_workers_exit_when_the_server_is_killed(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "server.log",
        {"APP_PROCESS_POOL_WORKERS": "2", "APP_PROCESS_POOL_WARM_UP": "true"},
    )
    children = _children(server.process.pid)
    assert len(children) >= 2  # the workers and multiprocessing's resource tracker
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)]
