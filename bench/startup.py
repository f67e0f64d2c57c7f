"""Start-up time to `/ready` and idle memory, with default settings.

Starts `python -m app` (default pool: one worker per CPU) several times; for each start, the
time from spawning the process to the first `/ready` 200, then, after the server has idled for
`--idle` seconds, the resident memory of the web process and of each of its worker processes
(read from /proc). Targets: ready in under 2 s, the web process under 150 MB.

Usage: .venv/bin/python -m bench.startup [--rounds 5] [--idle 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from pathlib import Path

from bench._server import running_server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The parent pid is the fourth field, after the command name in parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _workers(pid: int) -> list[int]:
    """The pool's worker processes: children running multiprocessing's spawn_main."""
    workers = []
    for child in _children(pid):
        command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in command:
            workers.append(child)
    return workers


def one_start(idle: float) -> tuple[float, float, list[float]]:
    """(seconds to /ready, web RSS MiB, worker RSS MiB each) for one start."""
    # The benchmark servers' settings, but bcrypt's cost and the rate limiter as deployed.
    env = {"APP_BCRYPT_ROUNDS": "12", "APP_RATE_LIMIT_REQUESTS": "100"}
    started = time.perf_counter()
    with running_server("app", _free_port(), env, ready_path="/ready", poll_seconds=0.01) as (
        process,
        _,
    ):
        ready = time.perf_counter() - started
        time.sleep(idle)
        return ready, _rss_mib(process.pid), [_rss_mib(w) for w in _workers(process.pid)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=3.0)
    args = parser.parse_args()
    results = [one_start(args.idle) for _ in range(args.rounds)]
    ready = [r[0] for r in results]
    web = [r[1] for r in results]
    workers = [w for r in results for w in r[2]]
    per_start = len(results[0][2])
    print(f"starts: {args.rounds}, worker processes per start: {per_start}")
    print(f"ready after: median {statistics.median(ready):.2f} s, max {max(ready):.2f} s")
    print(f"web RSS: median {statistics.median(web):.1f} MiB, max {max(web):.1f} MiB")
    if workers:
        print(
            f"worker RSS: median {statistics.median(workers):.1f} MiB, "
            f"max {max(workers):.1f} MiB each"
        )
    web_mb = max(web) * 1.048576  # MiB to MB: the target is in MB
    print(
        "verdict: "
        + ("pass" if max(ready) < 2 and web_mb < 150 else "fail")
        + f" (ready < 2 s, web < 150 MB: {web_mb:.0f} MB)"
    )


if __name__ == "__main__":
    main()
