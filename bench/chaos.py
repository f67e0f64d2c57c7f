"""Chaos, measured: what real processes lose or keep when they are killed, paused or flooded.

Each part starts its own servers (and redis-server) on loopback and stages one fault:

1. journal: the memory store SIGKILLed under writes, per `APP_JOURNAL_FSYNC` (acknowledged
   creates lost; `bench.journal` has the cost side);
2. ghost writes: a proxy holds back Redis's answer to a create's commit (Redis applied it, the
   app answered 503); the client retries with its `Idempotency-Key`: replayed 201s vs 409s;
3. silent SSE losses: a subscriber's replica is paused (SIGSTOP) 1.5 s while another replica
   publishes 250 events/s; events neither delivered nor reported in a `gap` event;
4. chat rejoin: a member's replica is SIGKILLed; seconds until the same name joins on another;
5. orphaned job: a scoring job's replica is SIGKILLed mid-job; seconds until another replica
   reports it failed;
6. overload: `bench.overload` (goodput and probe latency at 2,000 and 3,000 connections).

Usage: .venv/bin/python -m bench.chaos [--quick]
Needs redis-server and wrk (Debian packages). Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from httpx_sse import connect_sse
from websockets.asyncio.client import connect

from bench._proxy import AnswerHoldingProxy
from bench._server import redis_server, running_server
from bench.journal import POLICIES, _lost_after_sigkill

USERS = "/api/v1/users"


@contextmanager
def _replicas(
    count: int, first_port: int, redis_port: int, **env: str
) -> Iterator[tuple[list[tuple[subprocess.Popen[bytes], str]], str]]:
    with ExitStack() as stack:
        url = stack.enter_context(redis_server(redis_port, Path(tempfile.mkdtemp())))
        shared = {"APP_STORE": "redis", "APP_REDIS_URL": url, "APP_PROCESS_POOL_WORKERS": "1"}
        servers = [
            stack.enter_context(running_server("app", first_port + n, {**shared, **env}))
            for n in range(count)
        ]
        yield servers, url


def ghost_writes(attempts: int) -> tuple[int, int, int]:
    """(answered 503 though applied, retries replayed 201, retries answered 409)."""
    with ExitStack() as stack:
        url = stack.enter_context(redis_server(8941, Path(tempfile.mkdtemp())))
        proxy = stack.enter_context(AnswerHoldingProxy(8941, (b"",)))
        env = {
            "APP_STORE": "redis",
            "APP_REDIS_URL": url.replace(":8941", f":{proxy.port}"),
            "APP_REDIS_TIMEOUT_SECONDS": "0.3",
            "APP_PROCESS_POOL_WORKERS": "1",
        }
        _, base = stack.enter_context(running_server("app", 8942, env))
        ghosts = replayed = conflicts = 0
        with httpx.Client(base_url=base, timeout=10) as http:
            warm = {"email": "warm@x.io", "name": "W", "password": "password123"}
            http.post(USERS, json=warm).raise_for_status()  # Redis learns the commit script
            for n in range(attempts):
                email = f"ghost{n}@x.io"
                proxy.arm((b"EVALSHA", email.encode()))
                body = {"email": email, "name": "G", "password": "password123"}
                headers = {"Idempotency-Key": f"ghost-{n}"}
                if http.post(USERS, json=body, headers=headers).status_code != 503:
                    continue
                ghosts += 1
                retry = http.post(USERS, json=body, headers=headers)
                if retry.status_code == 201 and retry.headers.get("idempotent-replayed"):
                    replayed += 1
                elif retry.status_code == 409:
                    conflicts += 1
        return ghosts, replayed, conflicts


def silent_sse_losses(pause_seconds: float, rate: int, seconds: float) -> tuple[int, int, int]:
    """(published, delivered, lost without a gap event) for a subscriber whose replica was
    paused `pause_seconds` while the other published `rate` events/s for `seconds`."""
    with _replicas(2, 8951, 8950) as (servers, _):
        (_, publisher), (paused, subscriber) = servers
        delivered: set[str] = set()
        gapped = 0
        ready, done = threading.Event(), threading.Event()

        def listen() -> None:
            nonlocal gapped
            with (
                httpx.Client(base_url=subscriber, timeout=httpx.Timeout(10, read=30)) as http,
                connect_sse(http, "GET", "/api/v1/events/stream", params={"topic": "chaos"}) as sse,
            ):
                ready.set()
                for event in sse.iter_sse():
                    if event.event == "gap":
                        gapped += int(json.loads(event.data)["dropped"])
                    elif event.event != "ping" and event.id:
                        delivered.add(event.id)
                    if done.is_set() and len(delivered) + gapped >= published_count[0]:
                        return

        published_count = [0]
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        ready.wait(10)
        time.sleep(0.5)
        with httpx.Client(base_url=publisher, timeout=10) as http:
            started = time.monotonic()
            paused_at = started + (seconds - pause_seconds) / 2
            resumed = False
            stopped = False
            while (now := time.monotonic()) - started < seconds:
                if not stopped and now >= paused_at:
                    paused.send_signal(signal.SIGSTOP)
                    stopped = True
                if stopped and not resumed and now >= paused_at + pause_seconds:
                    paused.send_signal(signal.SIGCONT)
                    resumed = True
                http.post("/api/v1/events", json={"topic": "chaos", "data": {"n": 1}})
                published_count[0] += 1
                time.sleep(max(0.0, started + published_count[0] / rate - time.monotonic()))
            if not resumed:
                paused.send_signal(signal.SIGCONT)
        done.set()
        listener.join(20)
        published = published_count[0]
        return published, len(delivered), max(0, published - len(delivered) - gapped)


async def _rejoin_seconds(doomed: subprocess.Popen[bytes], doomed_url: str, other: str) -> float:
    def ws(base: str, name: str) -> str:
        return f"ws{base.removeprefix('http')}/api/v1/ws/chat?room=chaos&name={name}"

    ann = await connect(ws(doomed_url, "ann"))
    bob = await connect(ws(other, "bob"))
    await asyncio.sleep(0.5)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    killed = time.monotonic()
    while time.monotonic() - killed < 60:
        again = await connect(ws(other, "ann"))
        try:
            await asyncio.wait_for(again.recv(), 0.3)
        except TimeoutError:
            seconds = time.monotonic() - killed
            await again.close()
            await bob.close()
            return seconds
        except Exception:  # closed: the name was refused; the client retries
            await asyncio.sleep(0.1)
            continue
        seconds = time.monotonic() - killed
        await again.close()
        await bob.close()
        return seconds
    await ann.close()
    return float("inf")


def chat_rejoin() -> float:
    """Seconds from a member's replica SIGKILLed to the same name joined on another."""
    with _replicas(2, 8961, 8960) as (servers, _):
        (doomed, doomed_url), (_, other) = servers
        return asyncio.run(_rejoin_seconds(doomed, doomed_url, other))


def orphaned_job() -> float:
    """Seconds from a job's replica SIGKILLed mid-job to another replica reporting it failed."""
    env = {"APP_SCORING_JOB_CHUNK_RECORDS": "100", "APP_MAX_BODY_BYTES": str(8 * 1_048_576)}
    with _replicas(2, 8971, 8970, **env) as (servers, _):
        (doomed, a), (_, b) = servers
        features = {f"f{k}": 1.0 for k in range(8)}
        records = [{"id": str(i), "features": {**features, "f0": float(i)}} for i in range(30_000)]
        with httpx.Client(timeout=30) as http:
            job = http.post(
                f"{a}/api/v1/scoring/jobs", json={"records": records, "weights": {"f0": 1.0}}
            )
            job.raise_for_status()
            location = f"/api/v1/scoring/jobs/{job.json()['id']}"
            while http.get(a + location).json()["status"] != "running":
                time.sleep(0.02)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
            killed = time.monotonic()
            while http.get(b + location).json()["status"] == "running":
                if time.monotonic() - killed > 60:
                    return float("inf")
                time.sleep(0.1)
            return time.monotonic() - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer attempts, shorter runs")
    args = parser.parse_args()
    quick = args.quick

    print("1. journal: SIGKILL under writes (16 clients creating users)")
    print(f"   {'policy':10} {'acked':>6} {'lost':>5}")
    for number, policy in enumerate(POLICIES):
        acked, lost, _ = _lost_after_sigkill(policy, 100 if quick else 300, 8980 + number)
        print(f"   {policy:10} {acked:6d} {lost:5d}", flush=True)

    ghosts, replayed, conflicts = ghost_writes(3 if quick else 10)
    print(f"2. ghost writes: {ghosts} answered 503 though applied; retried with the same key: "
          f"{replayed} replayed 201, {conflicts} answered 409", flush=True)  # fmt: skip

    published, delivered, silent = silent_sse_losses(1.5, 250, 4.0)
    print(f"3. SSE, subscriber's replica paused 1.5 s at 250 events/s: {published} published, "
          f"{delivered} delivered, {silent} lost silently", flush=True)  # fmt: skip

    print(f"4. chat rejoin after its replica was SIGKILLed: {chat_rejoin():.2f} s", flush=True)
    print(f"5. orphaned job reported failed after {orphaned_job():.2f} s", flush=True)

    print("6. overload (python -m bench.overload):", flush=True)
    overload = ["--seconds", "4" if quick else "10", "--probe-port", "8891"]
    subprocess.run([sys.executable, "-m", "bench.overload", *overload], check=True)  # noqa: S603


if __name__ == "__main__":
    main()
