"""What the app and its middleware chain cost: the same users GET with the full chain, with no
middleware, from bare FastAPI answering a constant (what users compare against), and from a
typical peer stack (`bench/peer_stack.py`: the middleware libraries templates assemble).

Starts four real servers (`python -m app`, `python -m bench.bare_app`,
`python -m bench.fastapi_baseline`, `python -m bench.peer_stack`), then drives them with wrk in
interleaved rounds so that noise on a shared machine hits all alike, and prints requests/s,
p50, p99 and max per round, the medians, and the ratios to bare FastAPI and the peer stack.
With `taskset` available the servers run on CPU 0 and wrk on CPU 1, so the client does not
steal the server's core. The rate limiter stays on with a quota high enough never to refuse,
so its work is measured; logging is at INFO to /dev/null, as in production minus the disk.

Usage: .venv/bin/python -m bench.chain_overhead [--rounds 3] [--seconds 5] [--connections 64]
Needs wrk (Debian package `wrk`). Loopback only; bounded in time.
"""

from __future__ import annotations

import os

from bench._server import machine, running_server
from bench._wrk import TASKSET, Round, median_round, round_arguments, wrk

PATH = "/api/v1/users/1"  # the admin created at start-up


# The chain's full cost: logging at INFO (to /dev/null), and the rate limiter on with a quota
# so high it never refuses, so its work is measured too.
CHAIN_ENV = {
    "APP_LOG_FORMAT": "json",
    "APP_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
    "APP_RATE_LIMIT_REQUESTS": "1000000000",
}


def _wrk(url: str, seconds: int, connections: int) -> Round:
    return wrk(url + PATH, seconds, connections)


def main() -> None:
    args = round_arguments(__doc__.splitlines()[0])

    results: dict[str, list[Round]] = {"full": [], "bare": [], "fastapi": [], "peer": []}
    pinned = 0 if TASKSET else None  # the CPU the server is pinned to
    with (
        running_server("app", 8770, CHAIN_ENV, ready_path=PATH, cpu=pinned) as (_, full_url),
        running_server("bench.bare_app", 8771, CHAIN_ENV, ready_path=PATH, cpu=pinned) as (
            _,
            bare_url,
        ),
        running_server("bench.fastapi_baseline", 8772, CHAIN_ENV, cpu=pinned) as (_, fastapi_url),
        running_server("bench.peer_stack", 8773, CHAIN_ENV, cpu=pinned) as (_, peer_url),
    ):
        servers = {"full": full_url, "bare": bare_url, "fastapi": fastapi_url, "peer": peer_url}
        for url in servers.values():
            _wrk(url, 2, args.connections)  # warm-up, not counted
        for i in range(args.rounds):
            for name, url in servers.items():
                result = _wrk(url, args.seconds, args.connections)
                results[name].append(result)
                print(
                    f"round {i + 1} {name:7}: {result.rps:8.0f} req/s  "
                    f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                    f"max {result.max_ms:7.2f} ms",
                    flush=True,
                )

    median = {name: median_round(rounds) for name, rounds in results.items()}
    print()
    print(f"{'server':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'x FastAPI':>10}")
    for name, m in median.items():
        ratio = m.rps / median["fastapi"].rps
        print(
            f"{name:8} {m.rps:9.0f} {m.p50_ms:8.2f} {m.p99_ms:8.2f} {m.max_ms:8.2f} {ratio:10.2f}"
        )
    full, fastapi = median["full"], median["fastapi"]
    ratio = full.rps / fastapi.rps
    tail = full.p99_ms / full.p50_ms
    print()
    print(f"machine: {machine()}")
    print("targets for the full chain (#14):")
    print(f"  throughput >= 0.50x bare FastAPI: {ratio:.3f}  {'met' if ratio >= 0.5 else 'MISSED'}")
    print(f"  p99 <= 3x p50: {tail:.2f}x  {'met' if tail <= 3 else 'MISSED'}")
    print(
        f"  slowest request < 50 ms (over every round): {full.max_ms:.1f} ms  "
        f"{'met' if full.max_ms < 50 else 'MISSED'}"
    )
    print(f"full/bare throughput ratio: {median['full'].rps / median['bare'].rps:.2f}")
    print(f"full/FastAPI throughput ratio: {median['full'].rps / median['fastapi'].rps:.2f}")
    print(f"full/peer throughput ratio: {median['full'].rps / median['peer'].rps:.2f}")


if __name__ == "__main__":
    main()
