"""What the memory store's journal costs and what it keeps, per fsync policy.

1. Cost: PATCH /users/1 as the admin (a store write per request, no password hashing) with
   wrk, 16 connections, the app pinned to CPU 0, for each policy and with no snapshot path at
   all (no journal), interleaved over `--rounds`; ratios against "off" from the same run.
2. What a SIGKILL keeps: 16 async clients create users; after `--acks` acknowledged creates the
   server is killed with SIGKILL while they keep writing; a new process loads the same files,
   and every acknowledged user is looked up. A process kill loses nothing under any policy (the
   line reached the kernel before the answer); the policies differ on a host crash, which a
   benchmark on one machine cannot stage.

Usage: .venv/bin/python -m bench.journal [--rounds 3] [--seconds 5] [--acks 500]
Needs wrk (Debian package). Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import httpx

from bench._server import running_server
from bench._wrk import TASKSET, WRK, Round, median_round, wrk

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105 - a loopback benchmark's
POLICIES = ("off", "no", "everysec", "always")
# Renames the admin (user 1) over and over: a store write per request, no bcrypt.
PATCH_SCRIPT = """
local token, counter = "", 0
function init(args) token = args[1] end
request = function()
  counter = counter + 1
  local body = string.format('{"name":"Admin %d"}', counter)
  return wrk.format("PATCH", "/api/v1/users/1", {
    ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
"""


def _env(policy: str, directory: Path) -> dict[str, str]:
    admin = {"APP_ADMIN_EMAIL": ADMIN_EMAIL, "APP_ADMIN_PASSWORD": ADMIN_PASSWORD}
    if policy == "off":
        return admin
    snapshot = str(directory / "snapshot.json")
    return {**admin, "APP_SNAPSHOT_PATH": snapshot, "APP_JOURNAL_FSYNC": policy}


def _admin_token(base: str) -> str:
    credentials = {"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    response = httpx.post(base + "/api/v1/auth/token", data=credentials, timeout=30)
    response.raise_for_status()
    return str(response.json()["access_token"])


def _cost(rounds: int, seconds: int) -> dict[str, Round]:
    script = Path(tempfile.mkdtemp()) / "patch.lua"
    script.write_text(PATCH_SCRIPT)
    results: dict[str, list[Round]] = {p: [] for p in POLICIES}
    pinned = 0 if TASKSET else None  # the CPU the server is pinned to
    for i in range(rounds):
        for number, policy in enumerate(POLICIES):
            directory = Path(tempfile.mkdtemp())
            with running_server("app", 8870 + number, _env(policy, directory), cpu=pinned) as (
                _,
                base,
            ):
                token = _admin_token(base)
                wrk(base + "/api/v1/users/1", 1, 16, script, [token])
                result = wrk(base + "/api/v1/users/1", seconds, 16, script, [token])
            results[policy].append(result)
            print(
                f"round {i + 1} {policy:9}: {result.rps:7.0f} req/s  p50 {result.p50_ms:6.2f}  "
                f"p99 {result.p99_ms:6.2f} ms",
                flush=True,
            )
            shutil.rmtree(directory, ignore_errors=True)
    return {policy: median_round(found) for policy, found in results.items()}


async def _create_until_killed(base: str, process_pid: int, acks: int) -> dict[int, str]:
    acknowledged: dict[int, str] = {}
    killed = asyncio.Event()

    async def writer(number: int, http: httpx.AsyncClient) -> None:
        sequence = 0
        while True:
            sequence += 1
            name = f"C {number}-{sequence}"
            body = {"email": f"c{number}-{sequence}@x.io", "name": name, "password": "pw-12345"}
            try:
                response = await http.post("/api/v1/users", json=body)
            except httpx.TransportError:
                return
            if response.status_code == 201:
                acknowledged[response.json()["id"]] = name
            if len(acknowledged) >= acks and not killed.is_set():
                killed.set()
                os.kill(process_pid, signal.SIGKILL)

    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        await asyncio.gather(*(writer(n, http) for n in range(16)))
    return acknowledged


def _lost_after_sigkill(policy: str, acks: int, port: int) -> tuple[int, int, float]:
    """(acknowledged, lost, seconds the restart took to replay and answer)."""
    directory = Path(tempfile.mkdtemp())
    env = _env(policy, directory)
    with running_server("app", port, env) as (process, base):
        acknowledged = asyncio.run(_create_until_killed(base, process.pid, acks))
        process.wait(10)
    started = time.perf_counter()
    with running_server("app", port, env, poll_seconds=0.01) as (_, base):
        restart_seconds = time.perf_counter() - started
        with httpx.Client(base_url=base, timeout=10) as http:
            lost = sum(
                1
                for user_id, name in acknowledged.items()
                if (got := http.get(f"/api/v1/users/{user_id}")).status_code != 200
                or got.json()["name"] != name
            )
    shutil.rmtree(directory, ignore_errors=True)
    return len(acknowledged), lost, restart_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--acks", type=int, default=500)
    args = parser.parse_args()
    if not os.path.isabs(WRK):
        raise SystemExit("needs wrk: apt-get install wrk")

    cost = _cost(args.rounds, args.seconds)
    print()
    off = cost["off"]
    print(f"{'PATCH /users/1, median':22} {'req/s':>8} {'vs off':>7} {'p50 ms':>7} {'p99 ms':>7}")
    for policy, found in cost.items():
        print(
            f"{policy:22} {found.rps:8.0f} {found.rps / off.rps:7.2f} "
            f"{found.p50_ms:7.2f} {found.p99_ms:7.2f}"
        )
    print()
    print(f"{'SIGKILL under writes':22} {'acked':>7} {'lost':>6} {'restart s':>10}")
    for number, policy in enumerate(POLICIES):
        acked, lost, restart = _lost_after_sigkill(policy, args.acks, 8880 + number)
        print(f"{policy:22} {acked:7d} {lost:6d} {restart:10.2f}")


if __name__ == "__main__":
    main()
