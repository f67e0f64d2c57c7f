"""Settings: defaults, parsing, refusals, and the one-line start-up failure."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

import pytest

from app.core.config import DEV_ADMIN_PASSWORD, DEV_JWT_SECRET_KEY, load_settings
from app.core.exceptions import SettingsError
from tests.live_server import ROOT

STRONG_KEY = "Yq3vN8rT1xWm6pLk2Hs9Dz4Bf7Gc0JeA5uR"


def _production(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "env": "production",
        "jwt_secret_key": STRONG_KEY,
        "admin_password": "a-real-admin-password",
    }
    base.update(overrides)
    return base


def test_defaults_start_in_development_with_console_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("APP_"):
            monkeypatch.delenv(name)
    settings = load_settings(_env_file=None)
    assert settings.env == "development"
    assert settings.effective_log_format == "console"
    assert settings.cors_origins == ["http://localhost:3000", "http://localhost:5173"]
    assert settings.max_body_bytes == 1_048_576
    assert settings.effective_process_pool_queue == 4 * settings.process_pool_workers


def test_json_logs_outside_development() -> None:
    assert load_settings(env="test", log_format=None).effective_log_format == "json"


def test_comma_separated_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("APP_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7")
    settings = load_settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.trusted_proxies == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
    ]


def test_bad_value_names_the_variable_and_hides_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_RATE_LIMIT_REQUESTS", "lots")
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert "APP_RATE_LIMIT_REQUESTS" in message
    assert "lots" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"jwt_secret_key": DEV_JWT_SECRET_KEY}, "APP_JWT_SECRET_KEY"),
        ({"jwt_secret_key": "short"}, "APP_JWT_SECRET_KEY"),
        ({"admin_password": DEV_ADMIN_PASSWORD}, "APP_ADMIN_PASSWORD"),
        ({"cors_origins": ["*"]}, "APP_CORS_ORIGINS"),
        ({"bcrypt_rounds": 4}, "APP_BCRYPT_ROUNDS"),
        # What k8s/secret.example.yaml holds, and what a review found accepted.
        ({"jwt_secret_key": "REPLACE-ME-with-at-least-32-random-bytes"}, "APP_JWT_SECRET_KEY"),
        ({"jwt_secret_key": "k" * 40}, "APP_JWT_SECRET_KEY"),
        ({"admin_password": "REPLACE-ME-admin-password"}, "APP_ADMIN_PASSWORD"),
        ({"admin_password": "password"}, "APP_ADMIN_PASSWORD"),
        ({"admin_password": "password1234"}, "APP_ADMIN_PASSWORD"),
        ({"admin_password": "aaaaaaaaaaaaaaaa"}, "APP_ADMIN_PASSWORD"),
        (
            {"store": "redis", "redis_url": "redis://:REPLACE-ME@resilient-api-redis:6379/0"},
            "APP_REDIS_URL",
        ),
        ({"store": "redis", "redis_url": "redis://:short@redis:6379/0"}, "APP_REDIS_URL"),
    ],
)
def test_production_refuses_insecure_values(overrides: dict[str, object], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(**_production(**overrides))


def test_production_accepts_real_secrets() -> None:
    settings = load_settings(**_production(bcrypt_rounds=12))
    assert settings.env == "production"
    assert settings.effective_log_format == "json"


def test_the_development_key_is_refused_on_a_non_loopback_address() -> None:
    with pytest.raises(SettingsError, match="APP_JWT_SECRET_KEY"):
        load_settings(env="development", host="0.0.0.0", jwt_secret_key=DEV_JWT_SECRET_KEY)
    assert load_settings(env="development", host="127.0.0.1", jwt_secret_key=DEV_JWT_SECRET_KEY)


def test_breaker_min_calls_cannot_exceed_window() -> None:
    with pytest.raises(SettingsError, match="APP_BREAKER_MIN_CALLS"):
        load_settings(breaker_window_size=5, breaker_min_calls=6)


def test_empty_snapshot_path_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_SNAPSHOT_PATH", "")
    assert load_settings().snapshot_path is None


def test_server_with_bad_setting_exits_with_one_clear_line() -> None:
    env = {**os.environ, "APP_ENV": "production", "APP_JWT_SECRET_KEY": DEV_JWT_SECRET_KEY}
    result = subprocess.run(
        [sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "APP_JWT_SECRET_KEY" in lines[0]
    assert "Traceback" not in result.stderr


def test_the_store_settings_say_what_is_wrong_without_echoing_the_url() -> None:
    with pytest.raises(SettingsError, match="APP_REDIS_URL: must start with redis://") as bad:
        load_settings(redis_url="http://:hunter2hunter2@redis:6379")
    assert "hunter2" not in str(bad.value)
    with pytest.raises(SettingsError, match="APP_SNAPSHOT_PATH: snapshots belong to the memory"):
        load_settings(store="redis", snapshot_path="/tmp/snapshot.json")  # noqa: S108
    assert load_settings(store="redis").store == "redis"
    assert "redis_url" not in repr(load_settings())


def test_the_redis_url_is_shown_without_its_password() -> None:
    from app.redis.connection import redacted_url

    assert redacted_url("redis://:s3cret@db:6380/2") == "redis://***@db:6380/2"
    assert redacted_url("rediss://user:s3cret@db/0") == "rediss://***@db/0"
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_sentinels_are_host_port_pairs_used_only_with_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_STORE", "redis")
    monkeypatch.setenv("APP_REDIS_SENTINELS", "sentinel-0:26379, [::1]:26380")
    assert load_settings().redis_sentinels == [("sentinel-0", 26379), ("::1", 26380)]
    monkeypatch.setenv("APP_REDIS_SENTINELS", "sentinel-0")
    with pytest.raises(SettingsError, match=r"APP_REDIS_SENTINELS.*'sentinel-0' is not host:port"):
        load_settings()
    monkeypatch.setenv("APP_REDIS_SENTINELS", "sentinel-0:26379")
    monkeypatch.setenv("APP_STORE", "memory")
    with pytest.raises(SettingsError, match="APP_REDIS_SENTINELS: only used with APP_STORE=redis"):
        load_settings()


def test_sentinels_are_shown_by_address_and_name() -> None:
    from app.redis.connection import ConnectionSource, SentinelTarget

    target = SentinelTarget((("s-0", 26379), ("s-1", 26379)), "mymaster", "sentinel-pass")
    source = ConnectionSource("redis://:data-pass@ignored:6379/2", target, 1.0)
    assert source.display == "sentinel://s-0:26379,s-1:26379/mymaster"
    assert "pass" not in source.display
