"""A real `redis-server` (the Debian package) on a free loopback port, for the tests.

Each server has its own temporary directory and runs AOF with `appendfsync always`, as the
shipped Kubernetes overlay does: a write Redis acknowledged is on disk, so a test can kill it
with SIGKILL, start it again on the same port and directory, and find the write there.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.live_server import free_port

REDIS_SERVER = shutil.which("redis-server")


@dataclass
class RedisServer:
    """A redis-server process that can be killed and started again in place."""

    directory: Path
    port: int = field(default_factory=free_port)
    password: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL the app's `APP_REDIS_URL` takes (with the password, if there is one)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start (or start again) and return once it answers PING, as this process.

        The port is free when picked, but another process can take it before Redis binds it,
        and then answer in its place: Redis must name this process (`INFO server`). A first
        start moves to another port when that happens; a restart cannot (clients know the
        port) and fails saying so."""
        first = self.process is None
        for _ in range(3):
            if self._start_once(timeout):
                return
            if not first:
                break
            self.port = free_port()
        raise RuntimeError(f"another process holds port {self.port}: {self.log_text()}")

    def _start_once(self, timeout: float) -> bool:
        """True once this process answers; False if another process holds the port."""
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        logged_before = len(self.log_text())
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--protected-mode", "yes",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=log,
            stderr=log,
        )  # fmt: skip
        log.close()
        client = redis.Redis(port=self.port, password=self.password, socket_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    if "Address already in use" in self.log_text()[logged_before:]:
                        return False
                    raise RuntimeError(f"redis-server exited: {self.log_text()}")
                try:
                    if client.ping():
                        if int(client.info("server")["process_id"]) == self.process.pid:
                            return True
                        self.kill()  # it cannot bind the port: another Redis answered
                        return False
                except redis.ConnectionError:
                    time.sleep(0.05)
                except redis.ResponseError:  # another Redis, with a password we do not know
                    self.kill()
                    return False
        finally:
            client.close()
        raise RuntimeError(f"redis-server did not start: {self.log_text()}")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no chance to save anything more."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """Stop for good (SIGTERM, then SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def flush(self) -> None:
        """Empty every database: each test starts from nothing."""
        with redis.Redis(port=self.port, password=self.password) as client:
            client.flushall()

    def log_text(self) -> str:
        """What redis-server logged."""
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""
