"""Start a real server for a benchmark: loopback only, stopped however the benchmark ends."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

# Quiet, unthrottled test-mode servers: benchmarks measure the app, not the rate limiter.
BENCH_ENV = {
    "APP_ENV": "test",
    "APP_LOG_LEVEL": "WARNING",
    "APP_BCRYPT_ROUNDS": "4",
    "APP_RATE_LIMIT_REQUESTS": "0",
    # Every benchmark client comes from one address: lift the per-client bounds.
    "APP_SSE_MAX_STREAMS_PER_CLIENT": "10000",
    "APP_WS_MAX_CONNECTIONS_PER_CLIENT": "10000",
    "APP_CHAT_MAX_ROOM_MEMBERS": "10000",
    "APP_MAX_CONNECTIONS": "10000",
    "APP_HASH_QUEUE": "1000",
    "APP_LOGIN_ATTEMPTS_PER_MINUTE": "10000",
    "APP_SHUTDOWN_DRAIN_SECONDS": "0",
}


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different TCP ports nothing listens on right now (loopback). Held open together
    while they are picked: one at a time, the kernel may hand out the same port twice."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


# Asked on every readiness probe: the app answers with `X-Served-By: <instance>:<pid>`.
SERVED_BY = {"Prefer": "served-by"}


def served_by_other(process_pid: int, response: httpx.Response) -> int | None:
    """The pid of the process that answered, if the app says so and it is neither
    `process_pid` nor one of its children (its workers): another server holds the port,
    and ours could not bind it. A server that does not say (a baseline app) is taken as ours."""
    pid = response.headers.get("x-served-by", "").rpartition(":")[2]
    if not pid.isdigit() or int(pid) == process_pid:
        return None
    try:
        # /proc/<pid>/stat: "pid (comm) state ppid ...", and comm may hold spaces.
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return int(pid)  # gone already, or not ours to read: not our child either way
    return None if parent == process_pid else int(pid)


@contextmanager
def running_server(
    module: str,
    port: int,
    env: Mapping[str, str] | None = None,
    *,
    ready_path: str = "/live",
    cpu: int | None = None,
    poll_seconds: float = 0.1,
    cwd: Path = ROOT,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`python -m module` on 127.0.0.1:port (pinned to `cpu` if given, with taskset) from the
    checkout at `cwd`; yields (process, base URL) once `ready_path` answers 200 (asked every
    `poll_seconds`)."""
    full_env = {**os.environ, **BENCH_ENV, "APP_PORT": str(port), **(env or {})}
    command = [sys.executable, "-m", module]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command,
        cwd=cwd,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(base + ready_path, headers=SERVED_BY, timeout=1)
                if response.status_code == 200:
                    other = served_by_other(process.pid, response)
                    if other is not None:
                        raise SystemExit(f"port {port} is served by another process ({other})")
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{module} did not start")
            time.sleep(poll_seconds)
        yield process, base
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def redis_server(port: int, directory: Path) -> Iterator[str]:
    """redis-server (Debian package) on loopback with AOF fsynced on every write, as shipped;
    yields its URL once it answers."""
    process = subprocess.Popen(  # noqa: S603 - the Debian binary, our arguments
        [
            shutil.which("redis-server") or "redis-server",
            "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(  # noqa: S603
            [shutil.which("redis-cli") or "redis-cli", "-p", str(port), "ping"],
            capture_output=True,
            check=False,
        ).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def machine() -> str:
    """What the figures were measured on: CPU model, cores, Python, for the docs' tables."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def serve_plain(app: object) -> None:
    """Serve a comparison app the way every contender is served: uvicorn on loopback at
    APP_PORT, quiet, no access log, no server header."""
    import uvicorn

    uvicorn.run(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=int(os.environ["APP_PORT"]),
        log_level="warning",
        access_log=False,
        server_header=False,
    )
