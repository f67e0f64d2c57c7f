"""Redis failover under Sentinel, measured with real processes.

A primary, two replicas and three sentinels (Debian's redis-server, on loopback), a real server
(`python -m app`) that finds the primary through the sentinels, and writers creating users
without pause. The primary is SIGKILLed; the sentinels promote a replica. Measured:

- acknowledged writes lost: 201s whose user the new primary does not have, and ids given to
  two users (a lost user's id handed out again);
- seconds from the kill until the sentinels named a new primary, and until a write was
  acknowledged again;
- answers by status while it happened (a 500 is a bug: a failover is a 503 with Retry-After).

Run once without and once with `APP_REDIS_MIN_REPLICAS_ACK=1` (a write waits for a replica).

Usage: .venv/bin/python -m bench.failover [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from bench._server import free_port, free_ports, machine, running_server

MASTER = "mymaster"
USERS = "/api/v1/users"
# How quickly the sentinels act: a primary silent for 1 s is down; a failover that has not
# finished in 3 s is tried again. (Kubernetes defaults are larger: see docs/scaling.md.)
DOWN_AFTER_MS = 1000
REPLICATOR = "replicator"
REPLICATOR_PASSWORD = "replication-only-on-loopback"  # noqa: S105 - a benchmark's loopback
FAILOVER_TIMEOUT_MS = 3000


@dataclass
class SentinelGroup:
    """A primary, two replicas and three sentinels on loopback, in `directory`."""

    directory: Path
    ports: list[int] = field(default_factory=lambda: free_ports(6))  # six different ones
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def primary_port(self) -> int:
        """The port of the first primary."""
        return self.ports[0]

    @property
    def replica_ports(self) -> tuple[int, int]:
        """The ports of the two first replicas."""
        return self.ports[1], self.ports[2]

    @property
    def sentinel_ports(self) -> tuple[int, int, int]:
        """The ports of the three sentinels."""
        return self.ports[3], self.ports[4], self.ports[5]

    @property
    def sentinels(self) -> str:
        """The `APP_REDIS_SENTINELS` value."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def _spawn(self, port: int, *arguments: str) -> None:
        log = (self.directory / f"{port}.log").open("ab")
        self.processes[port] = subprocess.Popen(  # noqa: S603 - the Debian binary
            [shutil.which("redis-server") or "redis-server", *arguments],
            stdout=log,
            stderr=log,
        )
        log.close()

    def _data_node(self, port: int, *extra: str) -> None:
        directory = self.directory / str(port)
        directory.mkdir()
        self._spawn(
            port,
            "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            # A full sync starts at once (by default Redis waits 5 s for more replicas to share it).
            "--repl-diskless-sync-delay", "0",
            # Replicas copy as a user of their own, so replication alone can be cut.
            "--user", REPLICATOR, "on", f">{REPLICATOR_PASSWORD}", "~*", "&*", "+@all",
            "--masteruser", REPLICATOR, "--masterauth", REPLICATOR_PASSWORD,
            *extra,
        )  # fmt: skip

    def start(self, timeout: float = 30.0) -> None:
        """Start every process; return once each sentinel sees both replicas and both other
        sentinels (before that, a failover could not be agreed)."""
        self._data_node(self.primary_port)
        for port in self.replica_ports:
            self._data_node(port, "--replicaof", "127.0.0.1", str(self.primary_port))
        deadline = time.monotonic() + timeout
        # A sentinel learns the replicas from the primary's INFO, which it asks for at once and
        # then every 10 s: started after the replicas are linked, it knows them at once.
        while not self._replicas_linked():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replicas did not link; logs in {self.directory}")
            time.sleep(0.05)
        for port in self.sentinel_ports:
            config = self.directory / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {MASTER} 2\n"
            )
            self._spawn(port, str(config), "--sentinel")
        while not self._settled():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sentinel group did not settle; logs in {self.directory}")
            time.sleep(0.2)

    def _settled(self) -> bool:
        try:
            for port in self.sentinel_ports:
                with redis.Redis(port=port, socket_timeout=1) as sentinel:
                    state = sentinel.sentinel_master(MASTER)
                if int(state["num-slaves"]) < 2 or int(state["num-other-sentinels"]) < 2:
                    return False
        except (redis.RedisError, KeyError):
            return False
        return self._replicas_linked()

    def _replicas_linked(self) -> bool:
        try:
            for port in self.replica_ports:
                with redis.Redis(port=port, socket_timeout=1) as replica:
                    if replica.info("replication").get("master_link_status") != "up":
                        return False
        except redis.RedisError:
            return False
        return True

    def primary(self) -> int | None:
        """The port of the primary a sentinel names now (None if none answers)."""
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=0.5) as sentinel:
                    address = sentinel.sentinel_get_master_addr_by_name(MASTER)
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        return None

    def kill_primary(self) -> None:
        """SIGKILL the primary: nothing more is written or replicated."""
        process = self.processes[self.primary_port]
        process.kill()
        process.wait(10)

    def cut_replication(self) -> None:
        """Partition the primary from its replicas (it goes on taking writes): their
        connections are closed and they may not connect again."""
        with redis.Redis(port=self.primary_port, socket_timeout=2) as primary:
            primary.acl_setuser(REPLICATOR, enabled=False)
            primary.client_kill_filter(user=REPLICATOR)

    def pause(self, port: int) -> None:
        """SIGSTOP one process (a replica that stops answering, say)."""
        self.processes[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        """SIGCONT what `pause` stopped."""
        self.processes[port].send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop every process that still runs."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def sentinel_group(directory: Path) -> Iterator[SentinelGroup]:
    """A started `SentinelGroup`, stopped however the block ends."""
    group = SentinelGroup(directory)
    try:
        group.start()
        yield group
    finally:
        group.stop()


def server_env(group: SentinelGroup, *, min_replicas_ack: int) -> dict[str, str]:
    """The app's settings for `group` (every read goes to Redis: no cached copy hides a loss)."""
    return {
        "APP_STORE": "redis",
        # With sentinels, the URL gives the database (and would give the password); the host
        # is whichever primary the sentinels name.
        "APP_REDIS_URL": "redis://sentinel-named-primary/0",
        "APP_REDIS_SENTINELS": group.sentinels,
        "APP_REDIS_SENTINEL_MASTER": MASTER,
        "APP_REDIS_MIN_REPLICAS_ACK": str(min_replicas_ack),
        "APP_REDIS_TIMEOUT_SECONDS": "0.5",
        "APP_CACHE_TTL_SECONDS": "0.001",
    }


@dataclass
class FailoverResult:
    """What the writers saw around one failover."""

    acknowledged: int
    lost: int
    ids_given_twice: int
    statuses: Counter[int]
    without_retry_after: int  # 503s that did not say when to retry
    live_failures: int  # `GET /live` answers other than 200 while it happened
    failover_seconds: float  # kill → the sentinels name a new primary
    writes_back_seconds: float  # kill → the first write acknowledged after it


@dataclass
class _Write:
    started: float
    status: int
    user_id: int | None
    name: str
    retry_after: bool = False


async def _writer(http: httpx.AsyncClient, writes: list[_Write], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        token = secrets.token_hex(6)
        name = f"Failover {token}"  # public (the email is not): tells two users of an id apart
        body = {"email": f"failover-{token}@example.com", "name": name, "password": "password123"}
        try:
            response = await http.post(USERS, json=body)
        except httpx.TransportError:
            writes.append(_Write(started, 0, None, name))
            continue
        user_id = response.json()["id"] if response.status_code == 201 else None
        retry_after = "retry-after" in response.headers
        writes.append(_Write(started, response.status_code, user_id, name, retry_after))
        if response.status_code == 503:
            await asyncio.sleep(0.05)  # as a client honouring Retry-After would, briefly


async def _read_back(http: httpx.AsyncClient, user_id: int | None) -> httpx.Response:
    """GET one acknowledged user, as a client honouring Retry-After would: right after a
    failover (or on a busy machine) a read can still meet a 503 and is retried, for 10 s at most.
    A 200 or a 404 is an answer; anything else fails the measure with the response."""
    for _ in range(40):
        found = await http.get(f"{USERS}/{user_id}")
        if found.status_code != 503 or "retry-after" not in found.headers:
            break
        await asyncio.sleep(0.25)
    if found.status_code not in (200, 404):
        raise RuntimeError(f"reading user {user_id} back: {found.status_code} {found.text}")
    return found


async def _run(
    base_url: str, group: SentinelGroup, writers: int, before: float, after: float, lag: float
) -> FailoverResult:
    writes: list[_Write] = []
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=writers)
    async with httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as http:
        tasks = [asyncio.create_task(_writer(http, writes, stop)) for _ in range(writers)]
        if lag:
            # The replicas stop copying `lag` seconds before the crash: writes the primary
            # takes meanwhile exist nowhere else (a partition, a replica far behind).
            await asyncio.sleep(before - lag)
            await asyncio.to_thread(group.cut_replication)
            await asyncio.sleep(lag)
        else:
            await asyncio.sleep(before)
        old = group.primary_port
        killed = time.monotonic()
        await asyncio.to_thread(group.kill_primary)
        switched: float | None = None
        live_failures = 0
        while time.monotonic() - killed < 60:
            try:
                live_failures += (await http.get("/live")).status_code != 200
            except httpx.TransportError:
                live_failures += 1
            if switched is None:
                named = await asyncio.to_thread(group.primary)
                if named is not None and named != old:
                    switched = time.monotonic()
            back = [w for w in writes if w.started > killed and w.status == 201]
            if switched is not None and back and time.monotonic() - back[0].started > after:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
        acknowledged = [w for w in writes if w.user_id is not None]
        lost = given_twice = 0
        for write in acknowledged:
            found = await _read_back(http, write.user_id)
            if found.status_code == 404:
                lost += 1
            elif found.json()["name"] != write.name:
                lost += 1
                given_twice += 1
    back = [w for w in writes if w.started > killed and w.status == 201]
    return FailoverResult(
        acknowledged=len(acknowledged),
        lost=lost,
        ids_given_twice=given_twice,
        statuses=Counter(w.status for w in writes),
        without_retry_after=sum(w.status == 503 and not w.retry_after for w in writes),
        live_failures=live_failures,
        failover_seconds=(switched - killed) if switched is not None else float("inf"),
        writes_back_seconds=(back[0].started - killed) if back else float("inf"),
    )


def measure(
    base_url: str,
    group: SentinelGroup,
    *,
    writers: int = 8,
    before: float = 1.0,
    after: float = 1.0,
    lag: float = 0.0,
) -> FailoverResult:
    """Write through the app at `base_url`, kill `group`'s primary after `before` seconds, and
    go on until writes have been acknowledged again for `after` seconds (60 s at most). With
    `lag`, the replicas are paused for that long before the kill (resumed right after it)."""
    return asyncio.run(_run(base_url, group, writers, before, after, lag))


def _round(min_replicas_ack: int, lag: float) -> FailoverResult:
    with tempfile.TemporaryDirectory() as tmp, sentinel_group(Path(tmp)) as group:
        env = server_env(group, min_replicas_ack=min_replicas_ack)
        with running_server("app", free_port(), env) as (_, base):
            return measure(base, group, before=1.5, lag=lag)


def main() -> None:
    """Print one row per round and setting."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    rounds = parser.parse_args().rounds
    print(f"# Redis failover under Sentinel ({machine()})")
    print(f"# sentinels: down-after {DOWN_AFTER_MS} ms, failover-timeout {FAILOVER_TIMEOUT_MS} ms")
    print(
        "| replicas | APP_REDIS_MIN_REPLICAS_ACK | acknowledged | lost (ids given twice) "
        "| new primary after ",
        end="",
    )
    print("| writes back after | answers |")
    print("|---|---|---|---|---|---|---|")
    for _ in range(rounds):
        for lag, ack in ((0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)):
            r = _round(ack, lag)
            answers = ", ".join(f"{n} x {s}" for s, n in sorted(r.statuses.items()))
            replicas = f"{lag:g} s behind" if lag else "in step"
            print(
                f"| {replicas} | {ack} | {r.acknowledged} | {r.lost} ({r.ids_given_twice}) "
                f"| {r.failover_seconds:.2f} s "
                f"| {r.writes_back_seconds:.2f} s | {answers} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
