"""The test harness never hands a test another process's server: when the port picked for a
server is taken before it binds it (a test beside it, another suite on the machine), the other
server answers in its place, and the harness must tell (`X-Served-By` for the app, `INFO
server` for Redis) and start again on another port.

Beside another `make test`, this happened: a module's server had lost its port, and its tests
talked to another suite's server, which was draining."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis

import tests.live_server
from tests.live_server import LiveServer, free_port, start_server
from tests.redis_server import REDIS_SERVER, RedisServer


def _port(server: LiveServer) -> str:
    return server.base_url.rsplit(":", 1)[1]


def _pid_that_answers(server: LiveServer) -> str:
    response = httpx.get(server.base_url + "/live", headers={"Prefer": "served-by"}, timeout=10)
    return response.headers["x-served-by"].rsplit(":", 1)[1]


def test_a_server_whose_port_was_taken_starts_again_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = start_server(tmp_path / "holder.log")
    try:
        picks = iter([int(_port(holder)), free_port()])
        monkeypatch.setattr(tests.live_server, "free_port", lambda: next(picks))
        server = start_server(tmp_path / "server.log")
        try:
            assert _port(server) != _port(holder)
            assert _pid_that_answers(server) == str(server.process.pid)
        finally:
            server.stop()
    finally:
        holder.stop()


def test_a_server_given_a_taken_port_is_refused_not_confused_with_the_holder(
    tmp_path: Path,
) -> None:
    holder = start_server(tmp_path / "holder.log")
    try:
        with pytest.raises(RuntimeError, match="another process holds the port"):
            start_server(tmp_path / "server.log", {"APP_PORT": _port(holder)})
        assert _pid_that_answers(holder) == str(holder.process.pid)
    finally:
        holder.stop()


@pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server (Debian package)")
def test_a_redis_whose_port_was_taken_starts_on_another_and_answers_as_itself(
    tmp_path: Path,
) -> None:
    holder = RedisServer(tmp_path / "holder")
    holder.start()
    ours = RedisServer(tmp_path / "ours", port=holder.port)
    try:
        ours.start()
        assert ours.port != holder.port
        assert ours.process is not None
        with redis.Redis(port=ours.port) as client:
            assert int(client.info("server")["process_id"]) == ours.process.pid
    finally:
        ours.stop()
        holder.stop()
