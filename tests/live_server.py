"""Start the real server (`python -m app`, i.e. uvicorn) on a free port for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._server import SERVED_BY, served_by_other

# Re-exported: the tests pick ports with these.
from bench._server import free_port as free_port
from bench._server import free_ports as free_ports

ROOT = Path(__file__).resolve().parent.parent
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-for-tests"

# Settings every test server gets unless a test overrides them.
TEST_ENV = {
    "APP_ENV": "test",
    "APP_LOG_FORMAT": "json",
    "APP_LOG_LEVEL": "INFO",
    "APP_BCRYPT_ROUNDS": "4",  # fast hashing; production refuses fewer than 12 rounds
    "APP_ADMIN_EMAIL": ADMIN_EMAIL,
    "APP_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "APP_JWT_SECRET_KEY": "test-secret-key-that-is-at-least-32-bytes-long",
    "APP_SHUTDOWN_DRAIN_SECONDS": "0",  # tests that need the drain set it themselves
    "APP_RATE_LIMIT_REQUESTS": "0",  # off unless a test module turns it on
    # In-process tests address the app as httpx's ASGI transport does: http://testserver.
    "APP_ALLOWED_HOSTS": "localhost,127.0.0.1,::1,testserver",
    # Per-client bounds a load test from one address would hit; tests/security sets the real
    # defaults back and proves each bound.
    "APP_LOGIN_ATTEMPTS_PER_MINUTE": "10000",
    "APP_LOGIN_FAILURES_BEFORE_BACKOFF": "1000",
    "APP_HASH_QUEUE": "1000",
    "APP_SSE_MAX_STREAMS_PER_CLIENT": "10000",
    "APP_WS_MAX_CONNECTIONS_PER_CLIENT": "10000",
    "APP_CHAT_MAX_ROOM_MEMBERS": "10000",
    "APP_MAX_CONNECTIONS": "10000",
    # One CPU worker per server (the default is one per core), started by the first CPU task
    # rather than at start-up: a worker imports numpy and pandas, and most servers never score.
    # Tests of the pool's concurrency, its health and its drills set what they need.
    "APP_PROCESS_POOL_WORKERS": "1",
    "APP_PROCESS_POOL_WARM_UP": "false",
}


@dataclass
class LiveServer:
    """A running server process, its base URL and the file its logs go to."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    terminated: bool = False

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        """The server's JSON log lines, parsed."""
        return [json.loads(line) for line in self.log_text().splitlines() if line.startswith("{")]

    def wait_for_events(
        self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """The log events matching `predicate`, once at least `count` are written.

        A response can reach the client before the access line that follows it is written.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [event for event in self.log_events() if predicate(event)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def terminate(self) -> None:
        """SIGTERM, once (a second signal would skip the graceful shutdown)."""
        if self.process.poll() is None and not self.terminated:
            self.terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; SIGKILL if it will not stop. Returns the exit code."""
        self.terminate()
        if self.process.poll() is None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_server(
    log_path: Path, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> LiveServer:
    """Start `python -m app` and return once it answers `GET /live` (never rate-limited).

    The port is free when picked, but another process (a test beside this one, another suite
    on the machine) can take it before the server binds it, and then answer `/live` in its
    place. So the answer must name this process (`X-Served-By`); a server that lost its port is
    started again on another, up to 3 times (unless `env` names the port)."""
    fixed = env is not None and "APP_PORT" in env
    for _ in range(3):
        server = _start_once(log_path, env, timeout)
        if server is not None:
            return server
        if fixed:
            break
    raise RuntimeError(
        f"another process holds the port the server was given:\n{log_path.read_text()}"
    )


def _start_once(log_path: Path, env: Mapping[str, str] | None, timeout: float) -> LiveServer | None:
    """The started server, or None if another process holds the port it was given."""
    port = free_port()
    full_env = {**os.environ, **TEST_ENV, "APP_HOST": "127.0.0.1", "APP_PORT": str(port)}
    full_env.update(env or {})
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app"], cwd=ROOT, env=full_env, stdout=log_file, stderr=log_file
    )
    log_file.close()  # the child holds its own descriptor
    server = LiveServer(process, f"http://127.0.0.1:{full_env['APP_PORT']}", log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if "address already in use" in server.log_text():
                return None
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log_text()}")
        try:
            response = httpx.get(server.base_url + "/live", headers=SERVED_BY, timeout=1.0)
            if response.status_code == 200:
                if served_by_other(process.pid, response) is None:
                    return server
                server.stop()  # it cannot bind the port: another server answered for it
                return None
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"server did not start within {timeout} s:\n{server.log_text()}")
