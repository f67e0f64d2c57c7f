"""Drive a server with wrk (Debian package `wrk`) and read its report: requests/s, p50, p99, max.

With `taskset` available wrk runs on CPU 1, so it does not steal the core a benchmark pins the
server to (CPU 0).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK = shutil.which("wrk") or "wrk"
TASKSET = shutil.which("taskset")


@dataclass
class Round:
    """One wrk run's figures."""

    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def round_arguments(description: str) -> argparse.Namespace:
    """`--rounds`, `--seconds` and `--connections` for a bench that drives servers with wrk in
    interleaved rounds; exits with the way to install wrk when it is missing."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not os.path.isabs(WRK):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    return args


def median_round(rounds: list[Round]) -> Round:
    """The medians of several runs' figures, and the slowest request of all of them."""
    return Round(
        statistics.median(r.rps for r in rounds),
        statistics.median(r.p50_ms for r in rounds),
        statistics.median(r.p99_ms for r in rounds),
        max(r.max_ms for r in rounds),
    )


def _to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def on_cpu(cpu: int, command: list[str]) -> list[str]:
    """`command` pinned to `cpu` when taskset exists."""
    return [TASKSET, "-c", str(cpu), *command] if TASKSET else command


def wrk(
    url: str,
    seconds: int,
    connections: int,
    script: Path | None = None,
    script_args: list[str] | None = None,
) -> Round:
    """One run of wrk against `url` (with a Lua `script` and its arguments if given); fails on
    any non-2xx answer."""
    command = [WRK, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    out = subprocess.run(  # noqa: S603 - our own arguments
        on_cpu(1, command), capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    worst = _to_ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise SystemExit(f"non-2xx answers during the benchmark:\n{out}")
    return Round(rps, p50, p99, worst)
