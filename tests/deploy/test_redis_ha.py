"""The `redis-ha` component's start scripts, run as Kubernetes would run them, with real
redis-server processes on loopback (each "pod" a Redis and a Sentinel on ports of its own):
the first pod starts as the primary, the others as its replicas, the sentinels find each
other; when the primary is killed they promote a replica, and the old primary, started again,
asks the sentinels and comes back as a replica of the new one. No password appears in any
process's arguments.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.live_server import ROOT, free_ports

SCRIPTS = ROOT / "k8s" / "components" / "redis-ha" / "scripts"
PASSWORD = "ha password with $pace"
MASTER = "resilient-api"

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
    reason="needs redis-server and redis-cli (Debian package redis-server)",
)


@dataclass
class Pod:
    """One StatefulSet pod: its Redis and its Sentinel, each a process with the pod's env."""

    index: int
    directory: Path
    redis_port: int
    sentinel_port: int
    env: dict[str, str]
    redis: subprocess.Popen[bytes] | None = None
    sentinel: subprocess.Popen[bytes] | None = None

    def _run(self, script: str) -> subprocess.Popen[bytes]:
        log = (self.directory / f"{script}.log").open("ab")
        process = subprocess.Popen(
            [shutil.which("sh") or "/bin/sh", str(SCRIPTS / script)],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()
        return process

    def start_redis(self) -> None:
        self.redis = self._run("redis.sh")
        _wait_for(lambda: _client(self.redis_port).ping())

    def start_sentinel(self) -> None:
        self.sentinel = self._run("sentinel.sh")
        _wait_for(lambda: _client(self.sentinel_port).ping())

    def role(self) -> str:
        return str(_client(self.redis_port).info("replication")["role"])


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, password=PASSWORD, socket_timeout=1, decode_responses=True)


def _wait_for(check: Callable[[], object], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except (redis.RedisError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {check}")
        time.sleep(0.1)


def _named_primary(pods: list[Pod]) -> int | None:
    for pod in pods:
        try:
            address = _client(pod.sentinel_port).sentinel_get_master_addr_by_name(MASTER)
        except redis.RedisError:
            continue
        if isinstance(address, tuple | list):
            return int(address[1])
    return None


def _has_other_sentinels(port: int) -> bool:
    """The sentinel on `port` knows both others (so a failover can be agreed)."""
    state = _client(port).sentinel_master(MASTER)
    return isinstance(state, dict) and int(state["num-other-sentinels"]) == 2


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[list[Pod]]:
    picked = free_ports(6)
    ports = [(picked[i], picked[i + 3]) for i in range(3)]
    common = {
        "PATH": os.environ["PATH"],
        "REDIS_PASSWORD": PASSWORD,
        "REDISCLI_AUTH": PASSWORD,
        "MASTER_NAME": MASTER,
        "FIRST": f"127.0.0.1:{ports[0][0]}",
        "SENTINELS": " ".join(f"127.0.0.1:{sentinel}" for _, sentinel in ports),
        "DOWN_AFTER_MS": "1000",
        "FAILOVER_TIMEOUT_MS": "3000",
    }
    made = []
    for index, (redis_port, sentinel_port) in enumerate(ports):
        directory = tmp_path / f"pod-{index}"
        directory.mkdir()
        env = {
            **common,
            "SELF": f"127.0.0.1:{redis_port}",
            "SENTINEL_SELF": f"127.0.0.1:{sentinel_port}",
            "DATA_DIR": str(directory),
            "SENTINEL_DIR": str(directory),
        }
        made.append(Pod(index, directory, redis_port, sentinel_port, env))
    yield made
    for pod in made:
        for process in (pod.redis, pod.sentinel):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)


def test_the_pods_elect_fail_over_and_the_old_primary_rejoins_as_a_replica(
    pods: list[Pod],
) -> None:
    # Pods start one by one (the StatefulSet's ordered start): Redis, then the Sentinel.
    for pod in pods:
        pod.start_redis()
        pod.start_sentinel()
    first, *others = pods
    assert first.role() == "master"
    assert [pod.role() for pod in others] == ["slave", "slave"]
    for pod in pods:
        _wait_for(functools.partial(_has_other_sentinels, pod.sentinel_port))
    assert _named_primary(pods) == first.redis_port
    _client(first.redis_port).set("written-before", "1")
    _wait_for(lambda: all(_client(p.redis_port).get("written-before") for p in others))

    # Neither Redis nor a sentinel shows the password in its arguments.
    for pod in pods:
        for process in (pod.redis, pod.sentinel):
            assert process is not None
            cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
            assert PASSWORD.encode() not in cmdline

    assert first.redis is not None
    first.redis.kill()
    first.redis.wait(10)
    _wait_for(lambda: _named_primary(pods) not in (None, first.redis_port))
    promoted = next(pod for pod in others if pod.redis_port == _named_primary(pods))
    _wait_for(lambda: promoted.role() == "master")
    assert _client(promoted.redis_port).get("written-before") == "1"

    # The kubelet restarts the killed container: it asks the sentinels and follows.
    first.start_redis()
    _wait_for(lambda: first.role() == "slave")
    replication = _client(first.redis_port).info("replication")
    assert int(replication["master_port"]) == promoted.redis_port
