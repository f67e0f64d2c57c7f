"""Overload: useful throughput and probe latency at more connections than the server serves.

The server runs pinned to CPU 0 with its default connection cap (`APP_MAX_CONNECTIONS`, 2,048);
wrk on CPU 1 holds `--connections` open (a peak-load run at 256 first, then each size asked
for) against `GET /api/v1/users/1`, while a prober asks `/live` and `/ready` every 100 ms on a
fresh connection each time, as the kubelet does, with the manifests' 2 s timeout. Printed per
size: goodput (2xx answers per second), refusals per second (503s, resets), goodput as a share
of the peak, and the probes' p50 / p99 / max and failures (not 200, or past 2 s).

`--probe-port`: the probes ask the probe listener on that port (`APP_PROBE_PORT`) instead of
the main one.

Usage: .venv/bin/python -m bench.overload [--seconds 10] [--connections 2000 3000]
       [--probe-port 0]
Needs wrk (Debian package) and an open-file limit above the largest size (ulimit -n).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field

import httpx

from bench._server import running_server
from bench._wrk import TASKSET, WRK, on_cpu

PEAK_CONNECTIONS = 256
PROBE_TIMEOUT = 2.0


@dataclass
class Probes:
    """Latencies (ms) and failures of the probes asked during one run."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    def summary(self) -> str:
        if not self.latencies:
            return "no probes"
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            f"{statistics.median(ordered):7.1f} {p99:7.1f} {ordered[-1]:7.1f} "
            f"{self.failures:4d}/{len(ordered)}"
        )


def _probe(base: str, stop: threading.Event, probes: Probes) -> None:
    while not stop.is_set():
        for path in ("/live", "/ready"):
            started = time.perf_counter()
            try:
                ok = httpx.get(base + path, timeout=PROBE_TIMEOUT).status_code == 200
            except httpx.HTTPError:
                ok = False
            probes.latencies.append((time.perf_counter() - started) * 1000)
            probes.failures += 0 if ok else 1
        stop.wait(0.1)


def _load(url: str, seconds: int, connections: int) -> tuple[float, float]:
    """(2xx answers per second, other outcomes per second) of one wrk run."""
    command = [WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", url]
    out = subprocess.run(  # noqa: S603 - our own arguments
        on_cpu(1, command), capture_output=True, text=True, check=True
    ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    refused = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = sum(int(n) for n in errors.groups()) if errors else 0
    return (total - refused) / seconds, (refused + failed) / seconds


def _run(base: str, probe_base: str, seconds: int, connections: int) -> tuple[float, float, Probes]:
    probes, stop = Probes(), threading.Event()
    prober = threading.Thread(target=_probe, args=(probe_base, stop, probes), daemon=True)
    prober.start()
    try:
        goodput, refused = _load(base + "/api/v1/users/1", seconds, connections)
    finally:
        stop.set()
        prober.join(10)
    return goodput, refused, probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, nargs="+", default=[2000, 3000])
    parser.add_argument("--probe-port", type=int, default=0)
    args = parser.parse_args()
    if not WRK.startswith("/"):
        raise SystemExit("needs wrk: apt-get install wrk")
    # The shipped cap (BENCH_ENV lifts it for the other benchmarks).
    env = {"APP_MAX_CONNECTIONS": "2048"}
    if args.probe_port:
        env["APP_PROBE_PORT"] = str(args.probe_port)
    pinned = 0 if TASKSET else None  # the CPU the server is pinned to
    with running_server("app", 8890, env, cpu=pinned) as (_, base):
        probe_base = f"http://127.0.0.1:{args.probe_port}" if args.probe_port else base
        httpx.get(base + "/api/v1/users/1").raise_for_status()
        print(f"{'connections':>11} {'2xx/s':>8} {'refused/s':>9} {'of peak':>7}  "
              f"{'probe p50':>9} {'p99':>7} {'max ms':>7} {'failed':>6}")  # fmt: skip
        peak = None
        for connections in [PEAK_CONNECTIONS, *args.connections]:
            goodput, refused, probes = _run(base, probe_base, args.seconds, connections)
            peak = peak or goodput
            print(
                f"{connections:11d} {goodput:8.0f} {refused:9.0f} {goodput / peak:7.2f}  "
                f"{probes.summary()}",
                flush=True,
            )
            time.sleep(2)  # let the last run's connections go


if __name__ == "__main__":
    main()
