"""What tracing costs the hot path: the same users GET with the full chain, tracing off, on at
100% sampling (every request a span, exported over OTLP/HTTP to a local sink that reads and
discards each batch), and on at 10% (parent-based trace-id ratio), interleaved in rounds so the
noise of a shared machine hits all alike. Prints req/s, p50 and p99 per round, the medians side
by side, and the ratios.

Usage: .venv/bin/python -m bench.tracing_cost [--rounds 3] [--seconds 5] [--connections 64]
Needs wrk (Debian package `wrk`). Loopback only; bounded in time.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench._server import free_port, machine, running_server
from bench._wrk import TASKSET, Round, median_round, round_arguments, wrk
from bench.chain_overhead import CHAIN_ENV, PATH


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that reads every batch and keeps nothing."""

    batches = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Sink.batches += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def main() -> None:
    args = round_arguments(__doc__.splitlines()[0])

    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    traced_env = {
        **CHAIN_ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}",
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    sampled_env = {
        **traced_env,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    }
    pinned = 0 if TASKSET else None
    results: dict[str, list[Round]] = {"off": [], "on (100%)": [], "on (10%)": []}
    with (
        running_server("app", free_port(), CHAIN_ENV, ready_path=PATH, cpu=pinned) as (_, off),
        running_server("app", free_port(), traced_env, ready_path=PATH, cpu=pinned) as (_, on),
        running_server("app", free_port(), sampled_env, ready_path=PATH, cpu=pinned) as (
            _,
            sampled,
        ),
    ):
        servers = {"off": off, "on (100%)": on, "on (10%)": sampled}
        for url in servers.values():
            wrk(url + PATH, 2, args.connections)  # warm-up, not counted
        for i in range(args.rounds):
            for name, url in servers.items():
                result = wrk(url + PATH, args.seconds, args.connections)
                results[name].append(result)
                print(
                    f"round {i + 1} tracing {name:9}: {result.rps:8.0f} req/s  "
                    f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms",
                    flush=True,
                )
    sink.shutdown()

    median = {name: median_round(rounds) for name, rounds in results.items()}
    print()
    print(f"{'tracing':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, m in median.items():
        print(f"{name:10} {m.rps:9.0f} {m.p50_ms:8.2f} {m.p99_ms:8.2f}")
    print()
    for name in ("on (100%)", "on (10%)"):
        print(f"{name}/off throughput: {median[name].rps / median['off'].rps:.2f}")
    print(f"batches exported: {_Sink.batches}")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
