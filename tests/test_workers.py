"""Several worker processes on the memory store would serve several datasets (5 of 10 queries
saw a user, 5 did not): such a start is refused, saying why and what to do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.lifespan import several_workers
from tests.live_server import ROOT, TEST_ENV, free_port


def test_uvicorn_with_two_workers_on_the_memory_store_stops_with_the_reason() -> None:
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
    command += ["--workers", "2", "--port", str(free_port())]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, **TEST_ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert "APP_STORE=memory keeps the data in this process" in output
    assert "Run one worker (python -m app), or share the data with APP_STORE=redis" in output
    assert "failed to start, stopping the parent process" in output


def test_app_workers_on_the_memory_store_is_refused_before_anything_starts() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env={**os.environ, **TEST_ENV, "APP_WORKERS": "2", "APP_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: invalid configuration: APP_WORKERS=2: APP_STORE=memory keeps")
    assert "Run one worker, or share the data with APP_STORE=redis" in line


def test_one_process_is_not_several_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert several_workers() is None  # this test process: no supervisor, no WEB_CONCURRENCY
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    assert several_workers() == "WEB_CONCURRENCY=2"
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    assert several_workers() is None
