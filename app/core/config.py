"""Settings: every knob comes from an `APP_*` environment variable (or `.env`), validated once."""

from __future__ import annotations

import ipaddress
import os
import socket
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.exceptions import SettingsError
from app.core.tracing import tracing_wanted

# Development defaults let `make run` start with no `.env`; production refuses them.
DEV_JWT_SECRET_KEY = "dev-only-insecure-jwt-secret-change-me-0123456789"  # noqa: S105
DEV_ADMIN_PASSWORD = "dev-admin-password"  # noqa: S105

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Values that are placeholders, not secrets: production refuses any secret containing one.
_PLACEHOLDER_MARKERS = ("replace", "change-me", "changeme", "placeholder", "example", "secret")
# Passwords no production admin may have, however long.
_COMMON_PASSWORDS = frozenset(
    {"password", "password123", "passw0rd", "12345678", "123456789", "1234567890", "qwerty123",
     "letmein", "welcome1", "admin123", "administrator", "iloveyou", "trustno1"}
)  # fmt: skip
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _distinct_ratio(value: str) -> float:
    return len(set(value)) / max(1, len(value))


def weak_secret_reason(value: str, *, min_length: int) -> str | None:
    """Why `value` is not good enough as a production secret, or None if it is.

    Not an entropy meter: it catches what a reviewer found accepted (placeholders, a key of
    one repeated character, `password`), and leaves real randomness alone.
    """
    lowered = value.lower()
    if len(value) < min_length:
        return f"must be at least {min_length} characters"
    if any(marker in lowered for marker in _PLACEHOLDER_MARKERS):
        return "looks like a placeholder; generate a real value"
    if lowered in _COMMON_PASSWORDS or lowered.rstrip("0123456789!") in _COMMON_PASSWORDS:
        return "is a commonly used password"
    if len(set(value)) < 8 or _distinct_ratio(value) < 0.2:
        return "has too few distinct characters to be random"
    return None


def _available_cpus() -> int:
    # The CPUs this process may run on (respects taskset/cpusets), unlike os.cpu_count().
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    """All runtime configuration of the service."""

    model_config = SettingsConfigDict(
        env_prefix="APP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    env: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["console", "json"] | None = None  # None: console in development
    # OpenTelemetry traces over OTLP/HTTP (app/core/tracing.py); also on when an OTLP endpoint
    # is set the standard way (OTEL_EXPORTER_OTLP_ENDPOINT). Off: the hot path pays nothing.
    tracing_enabled: bool = False
    # Whose W3C `traceparent` a request's span continues: trusted proxies' only (a client could
    # otherwise choose trace ids and force sampling), anyone's, or nobody's.
    trace_context_from: Literal["proxies", "anyone", "nobody"] = "proxies"
    # This replica's name in /health, the console, the fleet view and traces. Unset: the host
    # name (in Kubernetes, the pod's name).
    instance_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # What a learner uses and a production API need not expose. Unset: on, except in
    # production. The console (`GET /` in a browser) and the demo routes (`/demo/*`,
    # `/cpu-intensive`, `/async-demo`, `/blocking-demo`); the fault-provoking lab routes and
    # the admin's fault injection are never served in production whatever these say.
    console_enabled: bool | None = None
    demos_enabled: bool | None = None
    # `/docs`, `/redoc` and `/openapi.json`.
    docs_enabled: bool = True
    # `/live` and `/ready` also on this port, answered from a thread of their own (for the
    # kubelet: a busy event loop does not delay them). Off when unset.
    probe_port: int | None = Field(default=None, ge=1, le=65535)
    # Worker processes sharing the port (`python -m app` supervises them). More than one needs
    # the shared store: with the memory store each would serve a dataset of its own.
    workers: int = Field(default=1, ge=1, le=64)
    graceful_shutdown_seconds: float = Field(default=20.0, gt=0, le=3600)
    shutdown_drain_seconds: float = Field(default=5.0, ge=0, le=300)

    # The whole request line and headers; more gets 431 (the proxy in front should bound it too).
    max_head_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    # uvicorn: connections at once (503 beyond), and how long a client may take to send a head.
    max_connections: int = Field(default=2048, ge=1, le=100_000)
    head_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    cors_origins: Annotated[list[str], NoDecode] = [
        "http://localhost:3000",
        "http://localhost:5173",
    ]
    trusted_proxies: Annotated[list[IpNetwork], NoDecode] = []
    # The names the service is served under (`Host`); `*.example.com` and `*` allowed.
    allowed_hosts: Annotated[list[str], NoDecode] = ["localhost", "127.0.0.1", "::1"]

    jwt_secret_key: str = Field(default=DEV_JWT_SECRET_KEY, min_length=1, repr=False)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_expire_minutes: int = Field(default=30, ge=1, le=24 * 60)
    jwt_issuer: str = Field(default="resilient-api", min_length=1, max_length=200)
    jwt_audience: str = Field(default="resilient-api", min_length=1, max_length=200)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    # Password hashing has threads of its own, bounded: past workers + queue, 503 at once.
    hash_workers: int = Field(default=2, ge=1, le=64)
    hash_queue: int = Field(default=16, ge=0, le=10_000)
    # Logins per client address and account in a minute, and the back-off after failures.
    login_attempts_per_minute: int = Field(default=10, ge=1, le=10_000)
    login_failures_before_backoff: int = Field(default=5, ge=1, le=1000)

    admin_email: str = "admin@example.com"
    admin_password: str = Field(default=DEV_ADMIN_PASSWORD, min_length=8, repr=False)
    # At start-up, set the existing admin's password to APP_ADMIN_PASSWORD (rotation).
    admin_reset_password: bool = False

    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=100 * 1_048_576)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    idempotency_max_keys: int = Field(default=100_000, ge=1)

    # Read by the middleware chain and later features; validated here so a typo fails at start.
    rate_limit_requests: int = Field(default=100, ge=0)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    # Per address a minute on the console, static files and /health/detailed (not the API).
    light_rate_limit_requests: int = Field(default=600, ge=1)
    # Who may scrape /metrics (empty: anyone; the NetworkPolicy restricts it in Kubernetes).
    metrics_allowed_networks: Annotated[list[IpNetwork], NoDecode] = []
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    breaker_window_size: int = Field(default=20, ge=1)
    breaker_min_calls: int = Field(default=10, ge=1)
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    breaker_half_open_calls: int = Field(default=3, ge=1)
    cache_ttl_seconds: float = Field(default=30.0, gt=0)
    cache_max_entries: int = Field(default=10_000, ge=1)
    # With Redis: how long past its TTL this replica's copy of a user (or a page) may be served,
    # marked stale, while Redis fails (RFC 5861 stale-if-error); 0 turns the fallback off.
    stale_if_error_seconds: float = Field(default=300.0, ge=0, le=86_400)
    process_pool_workers: int = Field(default_factory=_available_cpus, ge=1, le=64)
    process_pool_queue: int | None = Field(default=None, ge=0)
    # False: no worker starts until the first CPU task, which then waits for the imports (a
    # start-up that never scores, a test's or a laptop's, skips them).
    process_pool_warm_up: bool = True
    scoring_max_records: int = Field(default=100_000, ge=1)
    scoring_max_features: int = Field(default=100, ge=1, le=10_000)
    scoring_max_body_bytes: int = Field(default=16 * 1_048_576, ge=1024, le=1024 * 1_048_576)
    scoring_task_timeout_seconds: float = Field(default=8.0, gt=0, le=3600)
    scoring_job_ttl_seconds: float = Field(default=600.0, gt=0)
    scoring_job_chunk_records: int = Field(default=10_000, ge=100)
    # Finished jobs' results, as encoded JSON: at most this many bytes in all (this process,
    # or the Redis store for every replica) and per client; the oldest are evicted first.
    scoring_results_max_bytes: int = Field(default=32 * 1_048_576, ge=65_536, le=4096 * 1_048_576)
    scoring_results_max_bytes_per_client: int = Field(
        default=8 * 1_048_576, ge=4096, le=4096 * 1_048_576
    )
    thread_pool_workers: int = Field(default=16, ge=1, le=256)
    ws_max_message_bytes: int = Field(default=65_536, ge=64, le=16 * 1_048_576)
    ws_messages_per_second: int = Field(default=20, ge=1)
    ws_max_connections_per_client: int = Field(default=8, ge=1, le=10_000)
    chat_max_room_members: int = Field(default=50, ge=2, le=10_000)
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=15)
    sse_max_streams_per_client: int = Field(default=8, ge=1, le=10_000)
    # Every long-lived response (SSE, NDJSON, WebSocket) ends after this long; clients resume.
    stream_max_seconds: float = Field(default=3600.0, gt=0, le=7 * 24 * 3600)
    event_history_size: int = Field(default=1000, ge=1)
    event_history_bytes: int = Field(default=8 * 1_048_576, ge=65_536, le=1024 * 1_048_576)
    event_queue_size: int = Field(default=256, ge=1)
    event_queue_bytes: int = Field(default=1_048_576, ge=65_536, le=256 * 1_048_576)
    event_max_bytes: int = Field(default=16_384, ge=256, le=1_048_576)
    # One history read's data at most (the newest events that fit; at least one).
    event_read_max_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    # Where state lives: this process's memory (the default) or Redis, shared by every replica.
    store: Literal["memory", "redis"] = "memory"
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", min_length=1, repr=False)
    redis_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    redis_max_connections: int = Field(default=64, ge=1, le=10_000)
    # The Redis bulkhead: calls in flight at once (one per pooled connection by default); one
    # more waits for a slot within its timeout, then gets 503.
    redis_max_in_flight: int | None = Field(default=None, ge=1, le=10_000)
    # Redis behind Sentinel: the sentinels (host:port, comma-separated) and the name they
    # monitor. The app asks them for the primary, and again after a failover; APP_REDIS_URL
    # then gives only the password, the database and TLS.
    redis_sentinels: Annotated[list[tuple[str, int]], NoDecode] = []
    redis_sentinel_master: str = Field(default="mymaster", min_length=1, max_length=200)
    redis_sentinel_password: str | None = Field(default=None, repr=False)
    # Acknowledge a write only once this many replicas have it (Redis WAIT): what a failover
    # may lose, traded for a replica round trip on every write. 0 (the default): no wait.
    redis_min_replicas_ack: int = Field(default=0, ge=0, le=10)
    snapshot_path: str | None = None
    snapshot_interval_seconds: float = Field(default=60.0, gt=0)
    snapshot_on_corrupt: Literal["fail", "move-aside"] = "fail"
    # With a snapshot path, every write is journaled before it is acknowledged; this says when
    # the journal is fsynced (what a host crash may lose: nothing, about 1 s, up to ~30 s).
    journal_fsync: Literal["always", "everysec", "no"] = "everysec"
    audit_log_path: str | None = None
    audit_log_max_bytes: int = Field(default=10 * 1_048_576, ge=65_536)
    audit_log_backups: int = Field(default=3, ge=1, le=100)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().strip("[]") for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        # Documented as comma-separated; pydantic-settings would expect JSON for a list.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _split_sentinels(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        addresses = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            host, colon, port = part.rpartition(":")
            if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{part!r} is not host:port")
            addresses.append((host.strip("[]"), int(port)))
        return addresses

    @field_validator("trusted_proxies", "metrics_allowed_networks", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [
                ipaddress.ip_network(part.strip(), strict=False)
                for part in value.split(",")
                if part.strip()
            ]
        return value

    @field_validator("admin_email")
    @classmethod
    def _admin_email_shape(cls, value: str) -> str:
        if "@" not in value or value.startswith("@") or value.endswith("@"):
            raise ValueError("must be an email address")
        return value

    @field_validator("snapshot_path", "audit_log_path", "probe_port", mode="before")
    @classmethod
    def _empty_is_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        """Settings that contradict each other, whatever the environment."""
        if self.breaker_min_calls > self.breaker_window_size:
            raise ValueError(
                "APP_BREAKER_MIN_CALLS must not exceed APP_BREAKER_WINDOW_SIZE "
                f"({self.breaker_min_calls} > {self.breaker_window_size})"
            )
        if self.scoring_results_max_bytes_per_client > self.scoring_results_max_bytes:
            raise ValueError(
                "APP_SCORING_RESULTS_MAX_BYTES_PER_CLIENT must not exceed "
                "APP_SCORING_RESULTS_MAX_BYTES"
            )
        if not self.redis_url.startswith(("redis://", "rediss://")):
            raise ValueError("APP_REDIS_URL: must start with redis:// or rediss://")
        if self.redis_sentinels and self.store != "redis":
            raise ValueError("APP_REDIS_SENTINELS: only used with APP_STORE=redis")
        if self.workers > 1 and self.store == "memory":
            raise ValueError(
                f"APP_WORKERS={self.workers}: APP_STORE=memory keeps the data in one process, so "
                "each worker would serve a dataset of its own. Run one worker, or share the data "
                "with APP_STORE=redis"
            )
        if self.workers > 1 and self.audit_log_path is not None:
            raise ValueError(
                "APP_AUDIT_LOG_PATH: one file cannot be written and rotated by several workers; "
                "run one worker per pod (scale with replicas) to keep an audit log file"
            )
        if self.probe_port == self.port:
            raise ValueError("APP_PROBE_PORT must differ from APP_PORT")
        if self.store == "redis" and self.snapshot_path is not None:
            # Snapshots copy this process's memory; with Redis, Redis persistence (AOF) is what
            # keeps data across restarts, and two replicas must not restore two snapshots.
            raise ValueError(
                "APP_SNAPSHOT_PATH: snapshots belong to the memory store; with APP_STORE=redis "
                "configure Redis persistence (AOF) instead and leave APP_SNAPSHOT_PATH unset"
            )
        return self

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        """Secrets anyone could read here, refused on a network and in production."""
        if self.jwt_secret_key == DEV_JWT_SECRET_KEY and not self.on_loopback:
            # Anyone can read the development key in this repository: with it, anyone on the
            # network could sign tokens for any account.
            raise ValueError(
                f"APP_JWT_SECRET_KEY: the development key is refused when serving on {self.host} "
                "(only on a loopback address)"
            )
        if self.admin_password == DEV_ADMIN_PASSWORD and not self.on_loopback:
            # Published here too: on a network, anyone could log in as the admin.
            raise ValueError(
                f"APP_ADMIN_PASSWORD: the development password is refused when serving on "
                f"{self.host} (only on a loopback address)"
            )
        if self.env != "production":
            return self
        if self.jwt_secret_key == DEV_JWT_SECRET_KEY:
            raise ValueError("APP_JWT_SECRET_KEY: the development key is refused in production")
        if len(self.jwt_secret_key.encode()) < 32:
            raise ValueError("APP_JWT_SECRET_KEY: must be at least 32 bytes in production")
        if reason := weak_secret_reason(self.jwt_secret_key, min_length=32):
            raise ValueError(f"APP_JWT_SECRET_KEY: {reason}")
        if self.admin_password == DEV_ADMIN_PASSWORD:
            raise ValueError(
                "APP_ADMIN_PASSWORD: the development password is refused in production"
            )
        if reason := weak_secret_reason(self.admin_password, min_length=12):
            raise ValueError(f"APP_ADMIN_PASSWORD: {reason}")
        if "*" in self.cors_origins:
            raise ValueError("APP_CORS_ORIGINS: '*' is refused in production")
        if "*" in self.allowed_hosts:
            raise ValueError(
                "APP_ALLOWED_HOSTS: '*' is refused in production; list the names the service "
                "is served under"
            )
        redis_password = urlsplit(self.redis_url).password
        if (
            self.store == "redis"
            and redis_password is not None
            and (reason := weak_secret_reason(redis_password, min_length=16))
        ):
            raise ValueError(f"APP_REDIS_URL: its password {reason}")
        if self.redis_sentinel_password is not None and (
            reason := weak_secret_reason(self.redis_sentinel_password, min_length=16)
        ):
            raise ValueError(f"APP_REDIS_SENTINEL_PASSWORD: {reason}")
        if self.bcrypt_rounds < 12:
            raise ValueError("APP_BCRYPT_ROUNDS: at least 12 in production")
        return self

    @property
    def serves_console(self) -> bool:
        """The console is served (`APP_CONSOLE_ENABLED`, else everywhere but production)."""
        return (
            self.console_enabled if self.console_enabled is not None else self.env != "production"
        )

    @property
    def serves_demos(self) -> bool:
        """The demo routes are served (`APP_DEMOS_ENABLED`, else everywhere but production)."""
        return self.demos_enabled if self.demos_enabled is not None else self.env != "production"

    @property
    def instance(self) -> str:
        """This replica's name: `APP_INSTANCE_ID`, else the host name."""
        return self.instance_id or socket.gethostname()

    @property
    def traces(self) -> bool:
        """Whether traces are made and exported (`APP_TRACING_ENABLED`, or an OTLP endpoint in
        the standard variables, unless `OTEL_SDK_DISABLED=true`)."""
        return tracing_wanted(self.tracing_enabled)

    @property
    def effective_log_format(self) -> Literal["console", "json"]:
        """The explicit log format, else console in development and JSON elsewhere."""
        if self.log_format is not None:
            return self.log_format
        return "console" if self.env == "development" else "json"

    @property
    def effective_process_pool_queue(self) -> int:
        """Queued scoring tasks admitted beyond the busy workers (default 4 per worker)."""
        if self.process_pool_queue is not None:
            return self.process_pool_queue
        return 4 * self.process_pool_workers

    @property
    def on_loopback(self) -> bool:
        """Whether the server listens on a loopback address only (this machine's clients)."""
        return self.host in _LOOPBACK_HOSTS

    @property
    def is_development(self) -> bool:
        """Development mode shows exception text in 500 answers; no other mode does."""
        return self.env == "development"


def _describe(error: ErrorDetails) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    # Model-level errors carry the variable name in their own message already.
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        return message
    variable = "APP_" + loc[0].upper()
    return f"{variable}: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings, turning any error into one `SettingsError` line.

    The line names each offending variable and never echoes its value (it may be a secret).
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise SettingsError(f"invalid configuration: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
