"""What the server refuses to start with: a stored development admin password in production
(until it is rotated), placeholder secrets, the development key on a network address."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.core.config import DEV_ADMIN_PASSWORD
from tests.live_server import ADMIN_EMAIL, ROOT, TEST_ENV, start_server
from tests.redis_server import RedisServer

STRONG_KEY = "Yq3vN8rT1xWm6pLk2Hs9Dz4Bf7Gc0JeA5uR-production-test"
NEW_ADMIN_PASSWORD = "a long and real admin passphrase"


def _production(snapshot: Path, **extra: str) -> dict[str, str]:
    return {
        "APP_ENV": "production",
        "APP_JWT_SECRET_KEY": STRONG_KEY,
        "APP_ADMIN_PASSWORD": NEW_ADMIN_PASSWORD,
        "APP_BCRYPT_ROUNDS": "12",
        "APP_SNAPSHOT_PATH": str(snapshot),
        **extra,
    }


def _token_status(base_url: str, password: str) -> int:
    return httpx.post(
        base_url + "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": password}
    ).status_code


def test_production_refuses_a_stored_development_admin_password_until_reset(
    tmp_path: Path,
) -> None:
    snapshot = tmp_path / "snapshot.json"
    development = start_server(
        tmp_path / "dev.log",
        {"APP_ADMIN_PASSWORD": DEV_ADMIN_PASSWORD, "APP_SNAPSHOT_PATH": str(snapshot)},
    )
    development.stop()
    assert snapshot.exists()

    with pytest.raises(RuntimeError) as refused:
        start_server(tmp_path / "refused.log", _production(snapshot))
    assert "APP_ADMIN_RESET_PASSWORD" in str(refused.value)

    rotated = start_server(
        tmp_path / "rotated.log", _production(snapshot, APP_ADMIN_RESET_PASSWORD="true")
    )
    try:
        assert _token_status(rotated.base_url, DEV_ADMIN_PASSWORD) == 401
        assert _token_status(rotated.base_url, NEW_ADMIN_PASSWORD) == 200
    finally:
        rotated.stop()
    # Rotated once; later starts without the reset keep the new password.
    again = start_server(tmp_path / "again.log", _production(snapshot))
    try:
        assert _token_status(again.base_url, NEW_ADMIN_PASSWORD) == 200
    finally:
        again.stop()


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        (
            {
                "APP_ENV": "production",
                "APP_JWT_SECRET_KEY": "REPLACE-ME-with-at-least-32-random-bytes",
            },
            "APP_JWT_SECRET_KEY",
        ),
        ({"APP_ENV": "production", "APP_JWT_SECRET_KEY": "k" * 40}, "APP_JWT_SECRET_KEY"),
        (
            {
                "APP_ENV": "production",
                "APP_JWT_SECRET_KEY": STRONG_KEY,
                "APP_ADMIN_PASSWORD": "password",
            },
            "APP_ADMIN_PASSWORD",
        ),
        (
            {"APP_ENV": "development", "APP_HOST": "0.0.0.0", "APP_JWT_SECRET_KEY": ""},
            "APP_JWT_SECRET_KEY",
        ),
        (
            # The review's N16: the published development admin password on a network.
            {"APP_ENV": "test", "APP_HOST": "0.0.0.0", "APP_ADMIN_PASSWORD": ""},
            "APP_ADMIN_PASSWORD",
        ),
    ],
    ids=[
        "placeholder-key",
        "one-letter-key",
        "weak-admin-password",
        "dev-key-on-network",
        "dev-admin-password-on-network",
    ],
)
def test_unsafe_secrets_stop_the_server_with_one_line(
    settings: dict[str, str], variable: str
) -> None:
    env = {**os.environ, **TEST_ENV, **settings}
    for name in ("APP_JWT_SECRET_KEY", "APP_ADMIN_PASSWORD"):
        if settings.get(name) == "":
            del env[name]  # the development default
    result = subprocess.run(
        [sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert variable in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_drain_route_is_mounted_only_on_a_loopback_address() -> None:
    from app.core.config import load_settings
    from app.main import create_app

    def paths(host: str) -> set[str]:
        return set(create_app(load_settings(host=host)).openapi()["paths"])

    assert "/api/v1/admin/readiness" in paths("127.0.0.1")
    # The review's N16: a test-mode server on a network mounted it too.
    assert "/api/v1/admin/readiness" not in paths("0.0.0.0")


def test_the_admin_email_cannot_be_squatted_when_the_store_loses_its_data(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # The review's N17: after Redis lost its data anyone could register the configured admin
    # email, and the next start ran with no admin.
    redis_server.flush()
    env = {"APP_STORE": "redis", "APP_REDIS_URL": redis_server.url}
    server = start_server(tmp_path / "first.log", env)
    try:
        redis_server.flush()  # the store loses everything, the admin included
        squat = {"email": ADMIN_EMAIL.upper(), "name": "Mallory", "password": "password123"}
        taken = httpx.post(server.base_url + "/api/v1/users", json=squat, timeout=10)
        assert taken.status_code == 409
    finally:
        server.stop()
    # Had someone registered it anyway (here: while another admin email was configured, on a
    # store emptied while no replica ran, so nobody restored the admin), the next start refuses
    # to run without its admin, saying why.
    redis_server.flush()
    other = start_server(tmp_path / "other.log", {**env, "APP_ADMIN_EMAIL": "root@example.com"})
    try:
        squat["email"] = ADMIN_EMAIL
        created = httpx.post(other.base_url + "/api/v1/users", json=squat, timeout=10)
        assert created.status_code == 201
    finally:
        other.stop()
    with pytest.raises(RuntimeError) as refused:
        start_server(tmp_path / "refused.log", env)
    assert "APP_ADMIN_EMAIL" in str(refused.value)
    assert "not an admin" in str(refused.value)
