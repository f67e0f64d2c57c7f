"""`make bench`: run every benchmark in bench/ and print one table of their headline figures.

Each benchmark runs in its own process (they start servers of their own on loopback); their
full reports are printed as they finish, and the table at the end gathers the figures that
docs/benchmarks.md quotes.

Usage: .venv/bin/python -m bench.run_all [--quick]   (--quick: shorter rounds, for a smoke run)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable

Row = tuple[str, str]


def _run(module: str, *args: str) -> str:
    print(f"\n=== python -m {module} {' '.join(args)}", flush=True)
    result = subprocess.run(  # noqa: S603 - our own interpreter and modules
        [sys.executable, "-m", module, *args], capture_output=True, text=True, check=False
    )
    print(result.stdout, end="", flush=True)
    if result.returncode not in (0, 1):  # the soak exits 1 for a failed verdict: still a figure
        print(result.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{module} failed with exit code {result.returncode}")
    return result.stdout


def _find(pattern: str, text: str) -> list[str]:
    found = re.search(pattern, text, re.MULTILINE)
    return list(found.groups()) if found else ["?"]


def chain_layers(out: str) -> list[Row]:
    found = _find(r"^full chain\s+([\d.]+)\s+([\d.]+)", out)
    value = f"{found[1]} of {found[0]}" if len(found) == 2 else "?"
    return [("chain cost in process (us/request over bare, of total)", value)]


def chain_overhead(out: str) -> list[Row]:
    row = r"\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"
    full = _find(r"^full" + row, out)
    bare = _find(r"^bare" + row, out)
    fastapi = _find(r"^fastapi" + row, out)
    peer = _find(r"^peer" + row, out)
    return [
        ("users GET, full chain: req/s, p50, p99, max (ms)", " / ".join(full)),
        ("users GET, no middleware: req/s, p50, p99, max (ms)", " / ".join(bare)),
        ("bare FastAPI constant: req/s, p50, p99, max (ms)", " / ".join(fastapi)),
        ("typical peer stack: req/s, p50, p99, max (ms)", " / ".join(peer)),
        ("full/bare throughput", _find(r"full/bare throughput ratio: ([\d.]+)", out)[0]),
        (
            "full/FastAPI throughput (target >= 0.5)",
            _find(r"FastAPI throughput ratio: ([\d.]+)", out)[0],
        ),
        ("full chain p99 / p50 (target <= 3)", _find(r"p99 <= 3x p50: ([\d.]+)x", out)[0]),
        ("machine", _find(r"^machine: (.*)$", out)[0]),
    ]


def lists(out: str) -> list[Row]:
    rows = [
        (f"users {name}, {users} users: req/s, p50, p99 ms", f"{rate} / {p50} / {p99}")
        for users, name, rate, p50, p99 in re.findall(
            r"^median (\d+) users (.+?): (\d+) req/s, p50 ([\d.]+) ms, p99 ([\d.]+) ms",
            out,
            re.MULTILINE,
        )
    ]
    rows += [
        (f"POST at {users} users: server ms, hash, rest", f"{total} / {hashed} / {rest}")
        for users, total, hashed, rest in re.findall(
            r"^POST at (\d+) users: ([\d.]+) ms .*?hash ([\d.]+) ms and the rest ([\d.]+) ms",
            out,
            re.MULTILINE,
        )
    ]
    return rows


def scoring_pool(out: str) -> list[Row]:
    rows = []
    for where in ("pool", "inline"):
        lag = re.findall(rf"^\s+{where}\s+([\d.]+)\s+([\d.]+)\s*$", out, re.MULTILINE)
        live = re.findall(rf"^\s+{where}\s+([\d.]+)\s+([\d.]+)\s+(\d+)$", out, re.MULTILINE)
        if lag:
            rows.append((f"10 ms timer lag p50/p99 ms, scoring {where}", " / ".join(lag[0])))
        if live:
            rows.append((f"/live p50/p99 ms under scoring load, {where}", " / ".join(live[0][:2])))
    for records, numpy_rate, json_rate in re.findall(
        r"^\s+([\d,]+)\s+([\d,]+)\s+([\d,]+|\(over limit\))$", out, re.MULTILINE
    ):
        rows.append(
            (
                f"scoring {records} records x 10: numpy / from JSON rec/s",
                f"{numpy_rate} / {json_rate}",
            )
        )
    return rows


def realtime_delivery(out: str) -> list[Row]:
    return [
        (f"{transport} x {clients}: p50 / p99 ms, KiB per connection", f"{p50} / {p99}, {kib}")
        for transport, clients, p50, p99, kib in re.findall(
            r"^(sse|websocket)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.MULTILINE
        )
    ]


def realtime_replicas(out: str) -> list[Row]:
    return [
        (
            f"SSE across 2 replicas, {n} subscribers: p50 / p99 ms, KiB each, lost",
            f"{a} / {b}, {c}, {d}",
        )
        for n, a, b, c, d in re.findall(
            r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+\d+\s+(\d+)$", out, re.MULTILINE
        )
    ]


def stores(out: str) -> list[Row]:
    rows = []
    for path, _memory, _redis, ratio, p50, p99 in re.findall(
        r"^((?:GET|POST|list)[^\n]*?)\s{2,}(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+$",
        out,
        re.MULTILINE,
    ):
        rows.append((f"{path}: redis/memory req/s, redis p50/p99 ms", f"{ratio} ({p50} / {p99})"))
    for query, memory, redis in re.findall(
        r"^((?:limit|skip|email|name)[^\n]*?)\s{2,}([\d.]+)\s+([\d.]+)$", out, re.MULTILINE
    ):
        rows.append((f"list {query}: memory / redis ms", f"{memory} / {redis}"))
    return rows


def soak(out: str) -> list[Row]:
    rate = _find(r"(\d+) req/s", out)[0]
    growth = _find(r"\(([+-][\d.]+%) after warm-up\)", out)[0]
    verdict = _find(r"^verdict: (\w+)", out)[0]
    unexpected = _find(r"unexpected 5xx: (\d+)", out)[0]
    return [
        (
            "soak: req/s, unexpected 5xx, RSS after warm-up, verdict",
            f"{rate}, {unexpected}, {growth}, {verdict}",
        )
    ]


def startup(out: str) -> list[Row]:
    ready = _find(r"ready after: median ([\d.]+) s, max ([\d.]+) s", out)
    web = _find(r"web RSS: median ([\d.]+) MiB", out)[0]
    worker = _find(r"worker RSS: median ([\d.]+) MiB", out)[0]
    return [
        ("start-up to /ready: median, max (s; target < 2)", " / ".join(ready)),
        ("idle RSS: web, each worker (MiB; web target < 150 MB)", f"{web} / {worker}"),
    ]


def dependency_faults(out: str) -> list[Row]:
    # The table's columns are separated by two spaces or more (names have single spaces).
    lines = out[out.rfind("this checkout") :].splitlines()[1:]
    header = next(
        (re.split(r"\s{2,}", line.strip()) for line in lines if line.startswith("fault")), []
    )
    rows = []
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != len(header) or cells[0] not in ("blip", "stall", "crash"):
            continue
        row = dict(zip(header, cells, strict=True))
        rows.append(
            (
                f"Redis {row['fault']}: GET 200 (stale) / writes 503 / 500s / /live fails / "
                "fresh after s",
                f"{row['GET 200 during (fresh+stale)']} ({row['stale']}) / {row['writes 503']} / "
                f"{row['500s']} / {row['/live fails']} / {row['fresh again after s']}",
            )
        )
        rows.append(
            (
                f"Redis {row['fault']}, breaker open: GET p50/p99, 503 p50/p99 (ms)",
                f"{row['GET p50/p99 ms']}, {row['503 p50/p99 ms']}",
            )
        )
    return rows


def tracing_cost(out: str) -> list[Row]:
    return [
        (
            "tracing on (100%) / off throughput",
            _find(r"^on \(100%\)/off throughput: ([\d.]+)", out)[0],
        ),
        (
            "tracing on (10%) / off throughput",
            _find(r"^on \(10%\)/off throughput: ([\d.]+)", out)[0],
        ),
    ]


def journal(out: str) -> list[Row]:
    rows = [
        (f"journal {policy}: PATCH req/s vs no journal", ratio)
        for policy, ratio in re.findall(
            r"^(no|everysec|always)\s+\d+\s+([\d.]+)\s+[\d.]+\s+[\d.]+$", out, re.MULTILINE
        )
    ]
    rows += [
        (f"journal {policy}: acknowledged / lost after SIGKILL", f"{acked} / {lost}")
        for policy, acked, lost in re.findall(
            r"^(off|no|everysec|always)\s+(\d+)\s+(\d+)\s+[\d.]+$", out, re.MULTILINE
        )
    ]
    return rows


def overload(out: str) -> list[Row]:
    return [
        (
            f"overload {connections} conns: 2xx/s, of peak, probe p99 ms, probe failures",
            f"{goodput}, {share}, {p99}, {failed}",
        )
        for connections, goodput, share, p99, failed in re.findall(
            r"^\s+(\d+)\s+(\d+)\s+\d+\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+[\d.]+\s+(\d+/\d+)$",
            out,
            re.MULTILINE,
        )
    ]


def chaos(out: str) -> list[Row]:
    rows = []
    ghosts = re.search(
        r"^2\. ghost writes: (\d+) .*?: (\d+) replayed 201, (\d+) answered 409", out, re.M
    )
    if ghosts:
        rows.append(("ghost writes: answered 503, replayed 201, 409", " / ".join(ghosts.groups())))
    sse = re.search(r"^3\. .*?: (\d+) published, (\d+) delivered, (\d+) lost silently", out, re.M)
    if sse:
        rows.append(
            ("SSE replica paused 1.5 s: published / delivered / silent", " / ".join(sse.groups()))
        )
    rows.append(("chat rejoin after SIGKILL (s)", _find(r"^4\. .*?: ([\d.]+|inf) s", out)[0]))
    rows.append(
        ("orphaned job reported failed after (s)", _find(r"^5\. .*?after ([\d.]+|inf) s", out)[0])
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    quick = args.quick
    plan: list[tuple[str, list[str], Callable[[str], list[Row]]]] = [
        ("bench.chain_layers", ["--requests", "1000"] if quick else [], chain_layers),
        (
            "bench.chain_overhead",
            ["--rounds", "1", "--seconds", "2"] if quick else ["--rounds", "5"],
            chain_overhead,
        ),
        (
            "bench.lists",
            ["--rounds", "1", "--seconds", "2", "--sizes", "1000"] if quick else [],
            lists,
        ),
        ("bench.scoring_pool", ["--seconds", "2"] if quick else [], scoring_pool),
        (
            "bench.realtime_delivery",
            ["--sizes", "100", "--events", "5"] if quick else [],
            realtime_delivery,
        ),
        (
            "bench.realtime_replicas",
            ["--subscribers", "100", "--events", "5"] if quick else [],
            realtime_replicas,
        ),
        (
            "bench.stores",
            ["--rounds", "1", "--seconds", "2", "--users", "10000"] if quick else [],
            stores,
        ),
        (
            "bench.dependency_faults",
            ["--faults", "blip", "--users", "200", "--after", "5"] if quick else [],
            dependency_faults,
        ),
        (
            "bench.tracing_cost",
            ["--rounds", "1", "--seconds", "2"] if quick else [],
            tracing_cost,
        ),
        (
            "bench.journal",
            ["--rounds", "1", "--seconds", "2", "--acks", "100"] if quick else [],
            journal,
        ),
        (
            "bench.overload",
            ["--seconds", "3", "--connections", "3000", "--probe-port", "8891"]
            if quick
            else ["--probe-port", "8891"],
            overload,
        ),
        ("bench.chaos", ["--quick"] if quick else [], chaos),
        ("bench.startup", ["--rounds", "2", "--idle", "1"] if quick else [], startup),
        ("bench.soak", ["--seconds", "15"] if quick else ["--seconds", "60"], soak),
    ]
    rows: list[Row] = []
    for module, module_args, extract in plan:
        rows += extract(_run(module, *module_args))
    width = max(len(name) for name, _ in rows)
    print(f"\n{'figure':{width}}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for name, value in rows:
        print(f"{name:{width}}  {value}")


if __name__ == "__main__":
    main()
