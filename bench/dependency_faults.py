"""Redis faults under load, against two replicas: what clients see during the fault and how fast
fresh answers come back after it.

Starts redis-server and two app processes (`APP_STORE=redis`, loopback, the users cache's TTL
at 1 s so reads need Redis), registers `--users` users and reads each once on both replicas,
then runs a steady load (`--clients` per replica: 90% GET of a random user, 10% PATCH of one as
the admin) while, in turn:
- blip: Redis stopped (SIGSTOP) for 2 s, then resumed;
- stall: stopped for 10 s, then resumed;
- crash: killed (SIGKILL), started again after 3 s (AOF: nothing acknowledged is lost).
Per fault it prints, for the fault's window: GETs answered 200 (fresh and stale), GET p99,
writes refused and their p99, 500s, `/live` failures; the same once the breaker is open
(from the first answer given without Redis: GETs answered, GET and 503 p50/p99); and after
Redis is back: the time until the last answer that was not fresh (stale, 503 or 500), and
req/s against the baseline; and
attempts at Redis per call during the fault (retries included: the retry budget keeps it at
most about 1.1).

With `--against REV` the same run is made first against a git worktree of REV (e.g. the code
before the dependency pipeline), so the two tables come from one machine, one run.

Usage: .venv/bin/python -m bench.dependency_faults [--users 1000] [--clients 16] [--after 35]
       [--against 93880f0]. Needs redis-server (Debian package). Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench._server import ROOT, machine, running_server

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "bench-admin-password-for-faults"  # noqa: S105 - a loopback benchmark's
USERS = "/api/v1/users"


def _port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Redis:
    """redis-server with AOF, as shipped; can be paused, resumed, killed and started again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - the Debian binary, our arguments
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.answers():
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)

    def answers(self) -> bool:
        return (
            subprocess.run(  # noqa: S603
                [shutil.which("redis-cli") or "redis-cli", "-p", str(self.port), "ping"],
                capture_output=True,
                check=False,
                timeout=5,
            ).stdout.strip()
            == b"PONG"
        )

    def signal(self, number: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(10)


@contextmanager
def replica(code: Path, redis_url: str) -> Iterator[str]:
    """`python -m app` from the checkout at `code`, on Redis; yields its base URL."""
    env = {
        "APP_STORE": "redis",
        "APP_REDIS_URL": redis_url,
        "APP_CACHE_TTL_SECONDS": "1",
        "APP_ADMIN_EMAIL": ADMIN_EMAIL,
        "APP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "APP_PROCESS_POOL_WORKERS": "1",
        "APP_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    with running_server("app", _port(), env, ready_path="/ready", cwd=code) as (_, base):
        yield base


@dataclass
class Answer:
    at: float
    method: str
    status: int
    seconds: float
    fresh: bool


@dataclass
class Recorder:
    answers: list[Answer] = field(default_factory=list)
    live_failures: list[float] = field(default_factory=list)
    stop: bool = False


async def _client(base: str, ids: list[int], token: str, recorder: Recorder) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        while not recorder.stop:
            user = random.choice(ids)
            write = random.random() < 0.1
            started = time.monotonic()
            try:
                if write:
                    response = await http.patch(
                        f"{USERS}/{user}", json={"name": f"n{started:.3f}"}, headers=headers
                    )
                else:
                    response = await http.get(f"{USERS}/{user}")
                status = response.status_code
                fresh = status < 300 and "cache-status" not in response.headers
            except httpx.TransportError:
                status, fresh = 0, False
            recorder.answers.append(
                Answer(
                    started, "PATCH" if write else "GET", status, time.monotonic() - started, fresh
                )
            )


async def _live(base: str, recorder: Recorder) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while not recorder.stop:
            at = time.monotonic()
            try:
                ok = (await http.get("/live")).status_code == 200
            except httpx.TransportError:
                ok = False
            if not ok:
                recorder.live_failures.append(at)
            await asyncio.sleep(0.1)


def _p50(values: list[float]) -> float:
    if not values:
        return float("nan")
    return sorted(values)[len(values) // 2] * 1000


def _p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


async def _scenario(
    name: str, bases: list[str], ids: list[int], token: str, redis: Redis, args: argparse.Namespace
) -> dict[str, str]:
    recorder = Recorder()
    tasks = [
        asyncio.create_task(_client(base, ids, token, recorder))
        for base in bases
        for _ in range(args.clients)
    ] + [asyncio.create_task(_live(base, recorder)) for base in bases]
    await asyncio.sleep(args.baseline)
    counts_before = await _redis_attempts(bases)
    fault_start = time.monotonic()
    if name == "crash":
        redis.kill()
        await asyncio.sleep(3)
        await asyncio.to_thread(redis.start)
    else:
        redis.signal(signal.SIGSTOP)
        await asyncio.sleep(2 if name == "blip" else 10)
        redis.signal(signal.SIGCONT)
    back = time.monotonic()
    counts_during = await _redis_attempts(bases)
    await asyncio.sleep(args.after)
    recorder.stop = True
    await asyncio.gather(*tasks)

    answers = recorder.answers
    baseline = [a for a in answers if a.at < fault_start]
    during = [a for a in answers if fault_start <= a.at < back]
    after = [a for a in answers if a.at >= back]
    gets = [a for a in during if a.method == "GET"]
    writes = [a for a in during if a.method == "PATCH"]
    # Once the pipeline answers without Redis (a stale read or a refusal came back), its
    # breaker is open: what clients see from then on is the fallback's cost, not the timeouts
    # of the first wave.
    fallbacks = [
        a.at + a.seconds for a in during if a.status == 503 or (a.status == 200 and not a.fresh)
    ]
    opened = min(fallbacks) if fallbacks else back
    open_gets = [a for a in gets if a.at >= opened]
    open_refusals = [a for a in during if a.at >= opened and a.status == 503]
    not_fresh = [a.at for a in after if not (a.fresh or (a.method == "PATCH" and a.status == 200))]
    recovery = (max(not_fresh) - back) if not_fresh else 0.0
    tail = [a for a in after if a.at >= back + args.after - 5]
    before_rate = len(baseline) / args.baseline
    after_rate = len(tail) / 5
    return {
        "fault": name,
        "GET 200 during (fresh+stale)": f"{sum(a.status == 200 for a in gets)}/{len(gets)}",
        "stale": str(sum(a.status == 200 and not a.fresh for a in gets)),
        "GET p99 ms": f"{_p99([a.seconds for a in gets]):.1f}",
        "writes 503": f"{sum(a.status == 503 for a in writes)}/{len(writes)}",
        "503 p99 ms": f"{_p99([a.seconds for a in during if a.status == 503]):.1f}",
        "open after s": f"{opened - fault_start:.1f}",
        "once open: GET 200": f"{sum(a.status == 200 for a in open_gets)}/{len(open_gets)}",
        "GET p50/p99 ms": f"{_p50([a.seconds for a in open_gets]):.1f}/"
        f"{_p99([a.seconds for a in open_gets]):.1f}",
        "503 p50/p99 ms": f"{_p50([a.seconds for a in open_refusals]):.1f}/"
        f"{_p99([a.seconds for a in open_refusals]):.1f}",
        "500s": str(sum(a.status == 500 for a in answers)),
        "/live fails": str(len(recorder.live_failures)),
        "fresh again after s": f"{recovery:.1f}",
        "Redis attempts/calls during": _attempt_ratio(counts_before, counts_during),
        "req/s after/before": f"{after_rate / max(before_rate, 1e-9):.2f}",
    }


async def _redis_attempts(bases: list[str]) -> tuple[float, float] | None:
    """(attempts at Redis, of which retries), summed over the replicas, from their metrics;
    None on code without those metrics."""
    attempts = retries = 0.0
    found = False
    async with httpx.AsyncClient(timeout=10) as http:
        for base in bases:
            for line in (await http.get(base + "/metrics")).text.splitlines():
                if 'dependency="redis"' not in line or line.startswith("#"):
                    continue
                if line.startswith("dependency_calls_total{"):
                    attempts += float(line.rsplit(" ", 1)[1])
                    found = True
                elif line.startswith("dependency_retry_attempts_total{"):
                    retries += float(line.rsplit(" ", 1)[1])
    return (attempts, retries) if found else None


def _attempt_ratio(before: tuple[float, float] | None, after: tuple[float, float] | None) -> str:
    """Attempts at Redis per call made during the fault (1.00: no retries at all)."""
    if before is None or after is None:
        return "n/a"
    attempts, retries = after[0] - before[0], after[1] - before[1]
    calls = attempts - retries
    return f"{attempts / calls:.2f}" if calls > 0 else "n/a"


async def _prepare(bases: list[str], users: int) -> tuple[list[int], str]:
    async with httpx.AsyncClient(base_url=bases[0], timeout=30) as http:
        token = (
            await http.post(
                "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
        ).json()["access_token"]
        ids: list[int] = []
        for start in range(0, users, 50):
            replies = await asyncio.gather(
                *(
                    http.post(
                        USERS,
                        json={
                            "email": f"u{i}@bench.example",
                            "name": f"u{i}",
                            "password": "p" * 12,
                        },
                    )
                    for i in range(start, min(start + 50, users))
                )
            )
            ids += [r.json()["id"] for r in replies if r.status_code == 201]
    for base in bases:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for start in range(0, len(ids), 50):
                await asyncio.gather(*(http.get(f"{USERS}/{i}") for i in ids[start : start + 50]))
    return ids, token


def _run(code: Path, args: argparse.Namespace) -> list[dict[str, str]]:
    rows = []
    for name in args.faults:
        with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
            redis = Redis(Path(folder))
            redis.start()
            stack.callback(redis.stop)
            bases = [stack.enter_context(replica(code, redis.url)) for _ in range(2)]
            ids, token = asyncio.run(_prepare(bases, args.users))
            rows.append(asyncio.run(_scenario(name, bases, ids, token, redis, args)))
    return rows


def _table(title: str, rows: list[dict[str, str]]) -> None:
    print(f"\n{title}")
    columns = list(rows[0])
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(row[c].ljust(w) for c, w in zip(columns, widths, strict=True)))


@contextmanager
def _worktree(rev: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="faults-"))
    git = shutil.which("git") or "git"
    subprocess.run(  # noqa: S603
        [git, "worktree", "add", "--detach", "-q", str(folder), rev], cwd=ROOT, check=True
    )
    try:
        yield folder
    finally:
        subprocess.run(  # noqa: S603
            [git, "worktree", "remove", "--force", str(folder)], cwd=ROOT, check=False
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16, help="per replica")
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds before the fault")
    parser.add_argument("--after", type=float, default=35.0, help="seconds after Redis is back")
    parser.add_argument("--faults", nargs="+", default=["blip", "stall", "crash"])
    parser.add_argument("--against", help="a git revision to measure first, for comparison")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("needs redis-server (Debian package redis-server)")
    if args.against:
        with _worktree(args.against) as old:
            _table(f"before: {args.against}", _run(old, args))
    _table("this checkout", _run(ROOT, args))
    print(f"\nmachine: {machine()}")


if __name__ == "__main__":
    main()
