"""What the middleware chain costs: the same users GET with the full chain and with none.

Starts two real servers (`python -m app` and `python -m bench.bare_app`), then drives them
with wrk in interleaved rounds (full, bare, full, bare, ...) so that noise on a shared machine
hits both alike, and prints requests/s, p50 and p99 per round, the medians, and the ratio
full/bare. The rate limiter stays on with a quota high enough never to refuse, so its work is
measured; logging is at INFO to /dev/null, as in production minus the disk.

Usage: .venv/bin/python -m bench.chain_overhead [--rounds 3] [--seconds 5] [--connections 16]
Needs wrk (Debian package `wrk`). Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/v1/users/1"  # the admin created at start-up
WRK = shutil.which("wrk") or "wrk"


@dataclass
class Round:
    rps: float
    p50_ms: float
    p99_ms: float


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(module: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_PORT": str(port),
        "APP_LOG_FORMAT": "json",
        "APP_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        "APP_BCRYPT_ROUNDS": "4",
        "APP_RATE_LIMIT_REQUESTS": "1000000000",
        "APP_SHUTDOWN_DRAIN_SECONDS": "0",
    }
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + PATH, timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{module} did not start")


def _to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(url: str, seconds: int, connections: int) -> Round:
    out = subprocess.run(  # noqa: S603 - our own arguments
        [WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url + PATH],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise SystemExit(f"non-2xx answers during the benchmark:\n{out}")
    return Round(rps, p50, p99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not os.path.isabs(WRK):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    servers = {"full": _start("app"), "bare": _start("bench.bare_app")}
    results: dict[str, list[Round]] = {"full": [], "bare": []}
    try:
        for _, url in servers.values():
            _wrk(url, 2, args.connections)  # warm-up, not counted
        for i in range(args.rounds):
            for name, (_, url) in servers.items():
                result = _wrk(url, args.seconds, args.connections)
                results[name].append(result)
                print(
                    f"round {i + 1} {name:4}: {result.rps:8.0f} req/s  "
                    f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms",
                    flush=True,
                )
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(15)

    median = {
        name: Round(
            statistics.median(r.rps for r in rounds),
            statistics.median(r.p50_ms for r in rounds),
            statistics.median(r.p99_ms for r in rounds),
        )
        for name, rounds in results.items()
    }
    print()
    print(f"{'chain':6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, m in median.items():
        print(f"{name:6} {m.rps:9.0f} {m.p50_ms:8.2f} {m.p99_ms:8.2f}")
    print(f"full/bare throughput ratio: {median['full'].rps / median['bare'].rps:.2f}")


if __name__ == "__main__":
    main()
