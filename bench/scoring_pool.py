"""What the process pool buys: event-loop lag and /live latency under scoring load, pool
versus inline, and raw scoring throughput.

1. Event-loop lag, in process: a 10 ms timer's lateness (p50/p99) while scoring work runs
   (a) in a `ProcessPool` of 2 workers and (b) inline on the loop, same work, same duration.
2. `/live` latency over HTTP, against a real server (`python -m bench.inline_app`), while 8
   clients keep posting scoring requests to (a) `/api/v1/scoring` (the pool) and (b) a
   bench-only route that scores inline.
3. Scoring throughput in records/s for 10^4, 10^5 and 10^6 records x 10 features: the numpy
   work alone (fit + score + sort) and, up to the request limit, end to end from JSON bytes.

Usage: .venv/bin/python -m bench.scoring_pool [--seconds 5]   (loopback only, bounded)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx
import numpy as np

from app.core.exceptions import Overloaded
from app.services.process_pool import ProcessPool
from app.services.scoring import worker as scoring
from bench._server import running_server

ROOT = Path(__file__).resolve().parent.parent
LIMITS = scoring.ScoringLimits(max_records=1_000_000, max_features=100)


def _body(records: int, features: int = 10, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    values = rng.random((records, features)) * 100
    rows = [
        {"id": f"r{i}", "features": {f"f{j}": float(values[i, j]) for j in range(features)}}
        for i in range(records)
    ]
    return json.dumps(
        {"records": rows, "weights": {f"f{j}": 1.0 for j in range(features)}, "method": "zscore"}
    ).encode()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _lag_while(work: asyncio.Future[None] | asyncio.Task[None], samples: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not work.done():
        start = loop.time()
        await asyncio.sleep(0.01)
        samples.append((loop.time() - start - 0.01) * 1000)


async def loop_lag(seconds: float, body: bytes) -> dict[str, tuple[float, float]]:
    """p50/p99 lateness (ms) of a 10 ms timer while scoring runs in the pool, then inline."""
    pool = ProcessPool(workers=2, queue_limit=6, task_timeout=60, warm_up=scoring.warm_up)
    await pool.start()
    results: dict[str, tuple[float, float]] = {}
    try:

        async def pooled() -> None:
            deadline = time.monotonic() + seconds

            async def client() -> None:
                while time.monotonic() < deadline:
                    try:
                        await pool.reserve().run(scoring.score, body, LIMITS)
                    except Overloaded:
                        await asyncio.sleep(0.005)

            await asyncio.gather(*(client() for _ in range(8)))

        async def inline() -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                scoring.score(body, LIMITS)
                await asyncio.sleep(0)

        for name, work in (("pool", pooled), ("inline", inline)):
            samples: list[float] = []
            task = asyncio.create_task(work())
            await _lag_while(task, samples)
            await task
            results[name] = (_pct(samples, 0.5), _pct(samples, 0.99))
    finally:
        await pool.close()
    return results


def live_latency(seconds: float, body: bytes) -> dict[str, tuple[float, float, int]]:
    """p50/p99 of GET /live (ms) and scoring answers while 8 clients keep the server busy."""
    env = {
        "APP_PROCESS_POOL_WORKERS": "2",
        "APP_REQUEST_TIMEOUT_SECONDS": "60",
        "APP_MAX_BODY_BYTES": str(64 * 1_048_576),  # the inline route has no scoring override
    }
    with running_server("bench.inline_app", 8765, env) as (_, base):
        return {
            name: asyncio.run(_drive(base, path, body, seconds))
            for name, path in (("pool", "/api/v1/scoring"), ("inline", "/bench/inline-scoring"))
        }


async def _drive(base: str, path: str, body: bytes, seconds: float) -> tuple[float, float, int]:
    deadline = time.monotonic() + seconds
    answered = 0
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:

        async def load() -> None:
            nonlocal answered
            while time.monotonic() < deadline:
                response = await client.post(
                    path, content=body, headers={"Content-Type": "application/json"}
                )
                if response.status_code == 200:
                    answered += 1

        async def probe() -> list[float]:
            latencies: list[float] = []
            while time.monotonic() < deadline:
                start = time.perf_counter()
                await client.get("/live")
                latencies.append((time.perf_counter() - start) * 1000)
                await asyncio.sleep(0.02)
            return latencies

        probing = asyncio.ensure_future(probe())
        await asyncio.gather(*(load() for _ in range(8)))
        latencies = await probing
    return _pct(latencies, 0.5), _pct(latencies, 0.99), answered


def throughput() -> list[tuple[int, float, float | None]]:
    """(records, numpy records/s, end-to-end records/s or None) for 10^4..10^6 x 10."""
    rows = []
    for n in (10_000, 100_000, 1_000_000):
        matrix = np.random.default_rng(1).random((n, 10))
        ids = [f"r{i}" for i in range(n)]
        weights = np.ones(10)
        start = time.perf_counter()
        fitted = scoring.fit(matrix, "zscore")
        scores = scoring.score_rows(matrix, fitted, weights)
        scoring.rank_results(ids, scores, 10)
        scoring.feature_statistics(matrix, [f"f{j}" for j in range(10)])
        compute = n / (time.perf_counter() - start)
        end_to_end = None
        if n <= 100_000:
            body = _body(n)
            start = time.perf_counter()
            scoring.score(body, LIMITS)
            end_to_end = n / (time.perf_counter() - start)
        rows.append((n, compute, end_to_end))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    body = _body(5_000)

    lag = asyncio.run(loop_lag(args.seconds, body))
    print("event-loop lag of a 10 ms timer while scoring 5,000-record requests")
    print(f"  {'where':8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (p50, p99) in lag.items():
        print(f"  {name:8} {p50:8.2f} {p99:8.2f}")

    live = live_latency(args.seconds, body)
    print("GET /live while 8 clients post 5,000-record scoring requests (real server)")
    print(f"  {'where':8} {'p50 ms':>8} {'p99 ms':>8} {'scored':>7}")
    for name, (p50, p99, answered) in live.items():
        print(f"  {name:8} {p50:8.2f} {p99:8.2f} {answered:7d}")

    print("scoring throughput, 10 features (one process)")
    print(f"  {'records':>9} {'numpy rec/s':>12} {'from JSON rec/s':>16}")
    for n, compute, end_to_end in throughput():
        e2e = f"{end_to_end:16,.0f}" if end_to_end is not None else f"{'(over limit)':>16}"
        print(f"  {n:9,d} {compute:12,.0f} {e2e}")
    ratio = lag["inline"][1] / max(lag["pool"][1], 0.001)
    print(
        f"p99 loop lag inline/pool: {ratio:.0f}x; p99 /live inline/pool: "
        f"{live['inline'][1] / max(live['pool'][1], 0.001):.0f}x"
    )


if __name__ == "__main__":
    main()
