"""The package as a user installs and starts it: the wheel, the command, and imports that do
nothing they should not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from app import __version__
from tests.live_server import ROOT


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_the_app_module_reads_no_settings_and_starts_nothing() -> None:
    # An invalid setting would fail `get_settings()`: importing must not call it.
    result = _python(
        "import threading, app.main; print(threading.active_count())", APP_PORT="not-a-port"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    assert result.stderr == ""


def test_a_worker_process_imports_nothing_of_the_web_stack() -> None:
    result = _python(
        "import sys, app.services.scoring.worker; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'uvicorn'}))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_server_on_the_memory_store_never_loads_redis() -> None:
    # Started and stopped with its lifespan: the Redis backends (and redis-py, which brings
    # part of the OpenTelemetry SDK) are wired, so imported, only when APP_STORE=redis.
    result = _python(
        "import asyncio, sys; from asgi_lifespan import LifespanManager; "
        "from app.core.config import load_settings; from app.main import create_app\n"
        "async def main() -> None:\n"
        "    async with LifespanManager(create_app(load_settings()), startup_timeout=60):\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('app.redis')))",
        APP_STORE="memory",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_help_and_version_answer_without_starting_a_server() -> None:
    for flag, expected in (("--help", "APP_"), ("--version", f"resilient-api {__version__}")):
        start = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "app", flag],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
        assert "startup_complete" not in result.stdout + result.stderr
        assert time.monotonic() - start < 10


def test_the_wheel_carries_the_app_the_command_and_the_licence(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("resilient_api-*.whl")
    assert wheel.name.startswith(f"resilient_api-{__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith("/METADATA"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        metadata = archive.read(f"{dist_info}/METADATA").decode()
    assert "app/__main__.py" in names
    assert "app/services/scoring/worker.py" in names
    assert not any(n.startswith(("tests/", "bench/", "k8s/")) for n in names)
    assert "resilient-api = app.__main__:main" in entry_points
    assert "License-Expression: MIT" in metadata
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert "Requires-Dist: fastapi==" in metadata
