"""Start-up against a real Redis that answers PING but misses the deadline of what follows (a
busy host, a short `APP_REDIS_TIMEOUT_SECONDS`): the app waits it out instead of refusing to
start, and gives up, saying why, only once its store wait is over."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.container import StoreWait
from app.core.config import load_settings
from app.core.exceptions import StartupRefused
from app.core.logging import configure_logging
from app.main import create_app
from app.redis.client import RedisClient
from app.redis.identity import StoreIdentity
from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.redis_server import RedisServer

TIMEOUT_SECONDS = 0.3


def logged(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The JSON events written to stderr so far (the app's loggers are bound once, at first
    use, so a capture set up by a test would miss them)."""
    err = capfd.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def pause_writes(server: RedisServer, seconds: float) -> None:
    """Redis keeps answering reads (PING included) but holds every write and every script for
    `seconds`: what the app sees of a Redis too busy to answer within its deadline."""
    with redis.Redis(port=server.port) as client:
        client.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "WRITE")


def resume_writes(server: RedisServer) -> None:
    """End a pause early (a test that failed must not leave Redis paused for the next one)."""
    with redis.Redis(port=server.port) as client:
        client.execute_command("CLIENT", "UNPAUSE")


async def test_start_up_waits_out_a_redis_that_misses_its_deadline(
    module_redis: RedisServer, capfd: pytest.CaptureFixture[str]
) -> None:
    module_redis.flush()
    settings = load_settings().model_copy(
        update={
            "store": "redis",
            "redis_url": module_redis.url,
            "redis_timeout_seconds": TIMEOUT_SECONDS,
        }
    )
    app = create_app(settings)
    configure_logging("INFO", "json")
    # Ten of the app's call deadlines: joining the dataset (a script) misses several.
    pause_writes(module_redis, 10 * TIMEOUT_SECONDS)
    try:
        async with LifespanManager(app, startup_timeout=60) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver"
            ) as client:
                ready = await client.get("/ready")
                token = await client.post(
                    "/api/v1/auth/token",
                    data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                )
    finally:
        resume_writes(module_redis)
    events = logged(capfd)
    missed = [e for e in events if e["event"] == "redis_call_failed"]
    waited = [e for e in events if e["event"] == "waiting_for_redis"]
    assert {e["operation"] for e in missed} >= {"identity.join"}
    assert {e["operation"] for e in waited} >= {"identity.join"}
    assert not [e for e in events if e["event"] == "startup_failed"]
    # Started, on the dataset it joined, with its admin account.
    assert ready.status_code == 200, ready.text
    assert token.status_code == 200, token.text


async def test_start_up_gives_up_at_the_end_of_its_wait_and_says_why(
    module_redis: RedisServer, capfd: pytest.CaptureFixture[str]
) -> None:
    module_redis.flush()
    client = RedisClient(module_redis.url, timeout_seconds=TIMEOUT_SECONDS, max_connections=4)
    identity = StoreIdentity(client)
    wait = StoreWait(client, seconds=1.0)
    configure_logging("INFO", "json")
    pause_writes(module_redis, 60)
    try:
        with pytest.raises(StartupRefused) as refused:
            await wait.call("identity.join", identity.join)
        # Given up while Redis still held writes: at the end of its own wait, not the pause's.
        with (
            # One try: redis-py would otherwise retry a timed-out command three times.
            redis.Redis(
                port=module_redis.port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
            ) as other,
            pytest.raises(redis.TimeoutError),
        ):
            other.set("probe", 1)
    finally:
        resume_writes(module_redis)
        await client.close()
    events = logged(capfd)
    assert "did not answer identity.join within 1 s" in str(refused.value)
    assert "APP_REDIS_URL" in str(refused.value)
    assert identity.epoch is None
    # Tried again until the wait was over, not once.
    assert len([e for e in events if e["event"] == "waiting_for_redis"]) >= 1
    assert len([e for e in events if e["event"] == "redis_call_failed"]) >= 2
