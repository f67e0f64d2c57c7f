"""The composition root: every long-lived object of a running app, built from settings in one
place, started and closed in order by the lifespan (`app/lifespan.py`), and handed to requests as
the lifespan's typed state, which `app/api/deps.py` reads."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from opentelemetry.trace import Tracer

from app import __version__
from app.core.bounded_executor import BoundedExecutor
from app.core.breaker import BreakerConfig, BreakerRegistry
from app.core.config import Settings
from app.core.connection_quota import ConnectionQuota
from app.core.dependency import Dependency
from app.core.exceptions import (
    BreakerOpen,
    Overloaded,
    SimulatedFailure,
    StartupRefused,
    StoreUnavailable,
    WorkerCrashed,
)
from app.core.faults import InjectedFault
from app.core.lifecycle import Lifecycle
from app.core.logging import get_logger
from app.core.loop_lag import LoopLagMonitor
from app.core.security import PasswordHasher, TokenCodec, derived_key
from app.http.clients import ClientIdentifier
from app.http.representations import RepresentationCache
from app.memory.event_log import MemoryEventLog
from app.memory.fleet import MemoryFleet
from app.memory.guarded import (
    STORE_CALL_SECONDS,
    GuardedRepository,
    is_store_failure,
    is_store_retriable,
    refused,
)
from app.memory.idempotency import MemoryKeys
from app.memory.invalidation import MemoryInvalidation
from app.memory.jobs import MemoryJobs
from app.memory.login_throttle import MemoryFailures
from app.memory.rate_limiter import MemoryRateLimiter
from app.memory.repository import MemoryRepository
from app.memory.revocations import MemoryRevocations
from app.memory.snapshots import SnapshotManager
from app.services.audit import AuditLog
from app.services.auth import AuthService
from app.services.breaker_events import BreakerEvents
from app.services.cache import TTLCache
from app.services.chat import ChatManager
from app.services.events import EventBus
from app.services.flaky_upstream import SimulatedUpstream
from app.services.fleet import FleetReporter
from app.services.health import HealthChecker
from app.services.idempotency import IdempotencyStore
from app.services.login_throttle import LoginThrottle
from app.services.process_pool import ProcessPool
from app.services.scoring.service import ScoringService
from app.services.scoring.worker import ScoringLimits, warm_up
from app.services.tickers import TickerDrops
from app.services.users import USERS, UserService
from app.stores.chat_rooms import SharedRooms
from app.stores.events import EventLog
from app.stores.fleet import Fleet
from app.stores.idempotency import KeyBackend
from app.stores.invalidation import Invalidate
from app.stores.jobs import JobStore, ResultBounds
from app.stores.quotas import QuotaLimiter
from app.stores.records import Repository
from app.stores.revocations import Revocations

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from app.redis.backplane import Backplane
    from app.redis.client import RedisClient
    from app.redis.identity import StoreIdentity

# The Redis backends (and redis-py) are imported only when APP_STORE=redis, by the functions
# that wire them: a process on the memory store never loads them (a faster start).

log = get_logger(__name__)

T = TypeVar("T")

# Rendered public JSON kept per user version: about 200 bytes each, so at most ~1 MB.
RENDERED_USERS = 4096


@dataclass(frozen=True, slots=True)
class Foundation:
    """What the app builds before the lifespan runs, because the middleware chain and the
    server's signal handling need it: settings, lifecycle, tokens, client keys, breakers, and
    the Redis client when APP_STORE=redis (it connects on first use)."""

    settings: Settings
    lifecycle: Lifecycle
    tokens: TokenCodec
    clients: ClientIdentifier
    breakers: BreakerRegistry
    redis: RedisClient | None = None
    # The memory store as a dependency (APP_STORE=memory): nothing fails by itself, but it
    # takes injected faults through the same pipeline as Redis (app/memory/guarded.py).
    store: Dependency | None = None
    # The password-hashing threads and the CPU worker pool as dependencies: a drill can slow
    # them or make them fail.
    hashing: Dependency | None = None
    process_pool: Dependency | None = None
    # The flaky demo's simulated upstream, when demos are served.
    flaky: Dependency | None = None
    # With tracing on (APP_TRACING_ENABLED or OTEL_EXPORTER_OTLP_ENDPOINT): the app's own
    # provider, exporting over OTLP/HTTP (app/core/trace_export.py), and its tracer.
    tracer_provider: TracerProvider | None = None

    @property
    def tracer(self) -> Tracer | None:
        """The app's tracer when tracing is on, else None (nothing traces)."""
        if self.tracer_provider is None:
            return None
        return self.tracer_provider.get_tracer("resilient-api", __version__)

    @property
    def store_dependency(self) -> Dependency | None:
        """The store's dependency: Redis, or the memory store."""
        return self.redis.dependency if self.redis is not None else self.store

    @property
    def dependencies(self) -> tuple[Dependency, ...]:
        """The dependencies reached through a resilience pipeline: Redis or the memory store,
        the password-hashing threads, the CPU worker pool and the flaky demo's upstream."""
        chosen = (self.store_dependency, self.hashing, self.process_pool, self.flaky)
        return tuple(d for d in chosen if d is not None)


def memory_store(settings: Settings, breakers: BreakerRegistry) -> Dependency | None:
    """The `store` dependency when APP_STORE=memory (its probe is set once the repository
    exists), else None."""
    if settings.store != "memory":
        return None
    return Dependency(
        "store",
        breakers,
        max_in_flight=1024,
        timeout_seconds=STORE_CALL_SECONDS,
        refuse=refused,
        is_failure=is_store_failure,
        is_retriable=is_store_retriable,
    )


# Longer than any hash waits in a full queue (16 x 0.25 s over 2 threads at 12 rounds): only a
# hashing that is really stalled (a starved CPU, an injected fault) times out.
HASH_CALL_SECONDS = 10.0


def _is_hashing_failure(exc: BaseException) -> bool:
    # A full queue is load, not a failure of the threads: it must not open the breaker (one
    # client's burst of logins would then lock everyone out).
    return isinstance(exc, TimeoutError | InjectedFault)


def _overloaded(detail: str, retry_after: int) -> Overloaded:
    return Overloaded(detail, retry_after=retry_after)


def _nothing() -> None:
    """What the hashing probe runs: an answer as soon as a thread is free."""


def hashing_dependency(settings: Settings, breakers: BreakerRegistry) -> Dependency:
    """The `hashing` dependency: the password-hashing threads behind their own pipeline (its
    probe is set once the threads exist)."""
    return Dependency(
        "hashing",
        breakers,
        max_in_flight=settings.hash_workers + settings.hash_queue,
        timeout_seconds=HASH_CALL_SECONDS,
        retries=0,
        refuse=_overloaded,
        is_failure=_is_hashing_failure,
        wait_for_slot=False,
    )


def _is_pool_failure(exc: BaseException) -> bool:
    # A worker that died under a task twice, or a drill. Never a task's own time limit or its
    # input's error: one client's dataset must not open the breaker for everyone.
    return isinstance(exc, WorkerCrashed | InjectedFault)


def process_pool_dependency(settings: Settings, breakers: BreakerRegistry) -> Dependency:
    """The `process_pool` dependency: the CPU workers behind their own pipeline (the pool
    admits tasks itself; its probe is set once the pool exists)."""
    return Dependency(
        "process_pool",
        breakers,
        max_in_flight=settings.process_pool_workers + settings.effective_process_pool_queue,
        # The task's own limit and the request's deadline are kept by the pool (`_run`).
        timeout_seconds=3600.0,
        retries=0,
        refuse=_overloaded,
        is_failure=_is_pool_failure,
        wait_for_slot=False,
    )


def build_foundation(settings: Settings, lifecycle: Lifecycle | None = None) -> Foundation:
    """What the middleware chain and the server need before the lifespan runs, from
    `settings`: tokens, client keys, the breakers, and each dependency's pipeline."""
    tokens = TokenCodec(
        settings.jwt_secret_key,
        settings.jwt_algorithm,
        settings.jwt_expire_minutes,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    breakers = BreakerRegistry(
        BreakerConfig(
            window_size=settings.breaker_window_size,
            min_calls=settings.breaker_min_calls,
            failure_rate=settings.breaker_failure_rate,
            open_seconds=settings.breaker_open_seconds,
            half_open_calls=settings.breaker_half_open_calls,
        )
    )
    provider = None
    if settings.traces:
        from app.core.trace_export import build_tracer_provider  # the SDK only when tracing

        provider = build_tracer_provider(__version__)
    tracer = provider.get_tracer("resilient-api", __version__) if provider is not None else None
    return Foundation(
        settings=settings,
        lifecycle=lifecycle or Lifecycle(),
        tokens=tokens,
        clients=ClientIdentifier(
            trusted_proxies=settings.trusted_proxies, token_subject=tokens.subject_or_none
        ),
        breakers=breakers,
        redis=redis_client(settings, breakers, tracer),
        store=memory_store(settings, breakers),
        hashing=hashing_dependency(settings, breakers),
        process_pool=process_pool_dependency(settings, breakers),
        flaky=flaky_dependency(settings, breakers),
        tracer_provider=provider,
    )


def _is_upstream_failure(exc: BaseException) -> bool:
    return isinstance(exc, SimulatedFailure | InjectedFault)


def _breaker_open(detail: str, retry_after: int) -> BreakerOpen:
    return BreakerOpen(detail, retry_after=retry_after)


def flaky_dependency(settings: Settings, breakers: BreakerRegistry) -> Dependency | None:
    """The `flaky` dependency (the flaky demo's simulated upstream) when demos are served. No
    recovery probe: the upstream fails only when a request asks it to, so its breaker waits
    its open period, as a classic breaker does, for the learner to watch."""
    if not settings.serves_demos:
        return None
    return Dependency(
        "flaky",
        breakers,
        max_in_flight=64,
        timeout_seconds=1.0,
        retries=0,
        refuse=_overloaded,
        refuse_open=_breaker_open,
        is_failure=_is_upstream_failure,
        wait_for_slot=False,
    )


@dataclass(frozen=True)
class AppServices:
    """Everything a request handler may need, wired once per app."""

    foundation: Foundation
    repository: Repository
    redis: RedisClient | None  # set when APP_STORE=redis
    backplane: Backplane | None  # likewise
    identity: StoreIdentity | None  # likewise: the dataset this process joined
    users: UserService
    auth: AuthService
    idempotency: IdempotencyStore
    users_cache: TTLCache
    # Users' JSON, rendered once per version (app/api/representations.py renders into it).
    rendered_users: RepresentationCache
    process_pool: ProcessPool
    hashing: BoundedExecutor
    thread_pool: ThreadPoolExecutor
    scoring: ScoringService
    bus: EventBus
    chat: ChatManager
    sse_quota: ConnectionQuota
    ws_quota: ConnectionQuota
    audit: AuditLog | None
    snapshots: SnapshotManager | None
    revocations: Revocations
    health: HealthChecker
    breaker_events: BreakerEvents
    loop_lag: LoopLagMonitor
    tickers: TickerDrops
    fleet: FleetReporter
    flaky_upstream: SimulatedUpstream | None
    # Start-up's retries of store calls (`start`, and the admin account in app/lifespan.py).
    store_wait: StoreWait
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Start what runs in the background: threads, worker processes, cache cleanup, the
        audit log, and the watcher that ends long-lived connections when shutdown begins."""
        # Blocking calls (password hashing, file I/O) go through asyncio.to_thread: this pool.
        asyncio.get_running_loop().set_default_executor(self.thread_pool)
        if self.redis is not None:
            await self.store_wait.call("ping", self.redis.ping)
        if self.identity is not None:
            # Before any id is taken: ids come only from the dataset this process joined.
            self.identity.on_data_lost = self._restore_admin
            await self.store_wait.call("identity.join", self.identity.join)
        self.chat.start()
        if self.backplane is not None:
            await self.backplane.start()
        await self.store_wait.call("events.newest", self.bus.start)
        self.breaker_events.start()
        self.fleet.start()
        self.loop_lag.start()
        if self.snapshots is not None:
            # First: a snapshot that cannot be used stops start-up before anything else runs.
            await self.snapshots.load()
            self.snapshots.start()
        if isinstance(self.revocations, MemoryRevocations):
            # After the snapshot: the logouts it kept hold again before any request is served.
            await self.revocations.restore()
        await self.process_pool.start()
        self.users_cache.start_cleanup(max(1.0, self.foundation.settings.cache_ttl_seconds))
        if self.audit is not None:
            await self.audit.start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._end_streams()))

    async def _restore_admin(self) -> None:
        # Redis came back without its data: the admin account is made again, as at first start.
        settings = self.foundation.settings
        admin = await self.users.ensure_admin(
            email=settings.admin_email, password=settings.admin_password
        )
        log.warning("admin_restored_after_data_loss", admin_id=admin.id)

    async def _end_streams(self) -> None:
        # At the start of shutdown, before uvicorn closes sockets its own way (1012 for
        # WebSockets): chat members get 1001, SSE streams end cleanly.
        await self.foundation.lifecycle.wait_for_shutdown()
        streams = self.bus.close_streams()
        await self.chat.close_all()
        log.info("long_lived_connections_closed", event_streams=streams)

    async def close(self) -> None:
        """Stop in reverse order: jobs, worker processes, the bus and audit log, cache cleanup,
        threads."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.fleet.close()
        await self.loop_lag.stop()
        await self.chat.close()
        await self.scoring.close()
        await self.process_pool.close()
        if self.snapshots is not None:
            await self.snapshots.stop()  # after the last request: nothing written is lost
        if self.audit is not None:
            await self.audit.stop()
        await self.breaker_events.close()
        await self.bus.close()
        if self.backplane is not None:
            await self.backplane.close()
        await self.users_cache.stop_cleanup()
        if self.identity is not None:
            await self.identity.close()
        if self.redis is not None:
            await self.redis.close()
        if self.foundation.store is not None:
            await self.foundation.store.close()
        # Not waited on from a thread of its own pool (it cannot join itself): queued calls are
        # cancelled, running ones finish, and the interpreter joins the threads at exit.
        self.hashing.shutdown()
        self.thread_pool.shutdown(wait=False, cancel_futures=True)


# How long start-up waits for Redis: replicas started together with their Redis (a fresh
# install, a node restart) come up once it does, instead of failing and being restarted.
STORE_WAIT_SECONDS = 30.0


class StoreWait:
    """Start-up's patience with Redis: every store call made before the app serves (the first
    PING, joining the dataset, following the event stream, the admin account) is tried again
    while Redis is unavailable, until one deadline shared by all of them.

    A Redis that is up but slow (a busy host, a short `APP_REDIS_TIMEOUT_SECONDS`) can miss a
    call's deadline after it answered the PING; one miss must not fail the start. Every call
    made through here must be safe to repeat: a call that timed out may have run."""

    def __init__(self, redis: RedisClient | None, seconds: float = STORE_WAIT_SECONDS) -> None:
        self._redis = redis
        self.seconds = seconds
        self._deadline: float | None = None  # set by the first call: one wait for them all

    async def call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, tried again every half second while it raises `StoreUnavailable`;
        `StartupRefused` once the wait is over. Without Redis, `call()` once."""
        if self._redis is None:
            return await call()
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + self.seconds
        while True:
            try:
                return await call()
            except StoreUnavailable as exc:
                if loop.time() >= self._deadline:
                    raise StartupRefused(
                        f"Redis at {self._redis.display_url} did not answer {operation} within "
                        f"{self.seconds:g} s; check APP_REDIS_URL and that Redis runs"
                    ) from exc
                log.warning("waiting_for_redis", url=self._redis.display_url, operation=operation)
                await asyncio.sleep(0.5)


class AppState(TypedDict):
    """What the lifespan yields; Starlette hands a copy to every request as `request.state`."""

    services: AppServices


def _runtime_stats() -> dict[str, int]:
    # What leaks show up in first: tasks that never end, threads that pile up.
    return {"asyncio_tasks": len(asyncio.all_tasks()), "threads": threading.active_count()}


def _health_checker(
    repository: Repository,
    stores: Stores,
    breakers: BreakerRegistry,
    pool: ProcessPool,
    hashing: BoundedExecutor,
    cache: TTLCache,
    bus: EventBus,
    chat: ChatManager,
) -> HealthChecker:
    async def repository_counts() -> dict[str, Any]:
        # Takes the collection lock: a repository wedged by a stuck transaction fails here.
        return {USERS: await repository.count(USERS)}

    checker = HealthChecker(timeout_seconds=1.0)
    checker.register("repository", repository_counts, critical=True)
    redis, backplane = stores.redis, stores.backplane
    if redis is not None:
        # Critical: a replica that cannot reach the shared store takes itself out of the
        # Service until it can (liveness does not look, so nothing is restarted for it).
        checker.register("redis", redis.ping, critical=True)
    if backplane is not None:

        def subscription() -> dict[str, Any]:
            if not backplane.connected:
                raise ConnectionError("not subscribed to the other replicas (Redis unreachable)")
            return backplane.stats()

        checker.register("backplane", subscription, critical=True)
    checker.register("breakers", breakers.stats, degraded_if=lambda: breakers.any_open)
    checker.register("process_pool", pool.stats, degraded_if=lambda: pool.degraded)
    checker.register("password_hashing", hashing.stats)
    checker.register("cache", cache.stats)

    def event_bus() -> dict[str, Any]:
        if not bus.available:
            raise ConnectionError("not following the shared event stream (Redis unreachable)")
        return bus.stats()

    # Critical with Redis: a replica that cannot follow the stream would miss events silently.
    checker.register("event_bus", event_bus, critical=redis is not None)
    checker.register("chat", chat.stats)
    checker.register("runtime", _runtime_stats)
    return checker


@dataclass(frozen=True, slots=True)
class Stores:
    """The stateful seams, each from the backend APP_STORE chose."""

    repository: Repository
    redis: RedisClient | None
    backplane: Backplane | None  # pub/sub between replicas (Redis only)
    identity: StoreIdentity | None  # the dataset this process joined (Redis only)
    idempotency: KeyBackend
    jobs: JobStore
    revocations: Revocations
    fleet: Fleet


def redis_client(
    settings: Settings, breakers: BreakerRegistry, tracer: Tracer | None = None
) -> RedisClient | None:
    """The process's Redis connection pool when APP_STORE=redis, else None; its breaker
    ("redis") lives in `breakers` with the others."""
    if settings.store != "redis":
        return None
    from app.redis.client import RedisClient
    from app.redis.connection import SentinelTarget

    sentinel = None
    if settings.redis_sentinels:
        sentinel = SentinelTarget(
            tuple(settings.redis_sentinels),
            settings.redis_sentinel_master,
            settings.redis_sentinel_password,
        )
    return RedisClient(
        settings.redis_url,
        timeout_seconds=settings.redis_timeout_seconds,
        max_connections=settings.redis_max_connections,
        breakers=breakers,
        max_in_flight=settings.redis_max_in_flight or settings.redis_max_connections,
        sentinel=sentinel,
        min_replicas_ack=settings.redis_min_replicas_ack,
        tracer=tracer,
    )


def result_bounds(settings: Settings) -> ResultBounds:
    """How many bytes of finished scoring results are kept, in all and per client."""
    return ResultBounds(
        max_bytes=settings.scoring_results_max_bytes,
        max_bytes_per_client=settings.scoring_results_max_bytes_per_client,
    )


def build_stores(settings: Settings, client: RedisClient | None) -> Stores:
    """In this process's memory (the default), or in Redis, shared by every replica."""
    if client is None:
        repository = MemoryRepository()
        return Stores(
            repository=repository,
            redis=None,
            backplane=None,
            identity=None,
            idempotency=MemoryKeys(
                ttl_seconds=settings.idempotency_ttl_seconds,
                max_keys=settings.idempotency_max_keys,
            ),
            jobs=MemoryJobs(
                ttl_seconds=settings.scoring_job_ttl_seconds, bounds=result_bounds(settings)
            ),
            # Durable with the repository (APP_SNAPSHOT_PATH): a logout outlives a restart.
            revocations=MemoryRevocations(records=repository),
            fleet=MemoryFleet(),
        )
    from app.redis.backplane import Backplane
    from app.redis.fleet import RedisFleet
    from app.redis.idempotency import RedisKeys
    from app.redis.jobs import RedisJobs
    from app.redis.repository import RedisRepository
    from app.redis.revocations import RedisRevocations

    log.info("store_selected", store="redis", url=client.display_url)
    shared = RedisRepository(client)
    return Stores(
        repository=shared,
        redis=client,
        backplane=Backplane(client),
        identity=shared.identity,
        idempotency=RedisKeys(client, ttl_seconds=settings.idempotency_ttl_seconds),
        jobs=RedisJobs(
            client, ttl_seconds=settings.scoring_job_ttl_seconds, bounds=result_bounds(settings)
        ),
        revocations=RedisRevocations(client),
        fleet=RedisFleet(client),
    )


def memory_login_throttle(
    *,
    attempts_per_minute: int,
    failures_before_backoff: int,
    max_entries: int = 100_000,
    clock: Callable[[], float] = time.monotonic,
) -> LoginThrottle:
    """A login throttle whose state lives in this process."""
    return LoginThrottle(
        attempts=MemoryRateLimiter(attempts_per_minute, 60, clock=clock),
        pairs=MemoryFailures(failures_before_backoff, max_entries, clock),
        accounts=MemoryFailures(failures_before_backoff, max_entries, clock),
    )


def build_login_throttle(settings: Settings, redis: RedisClient | None) -> LoginThrottle:
    """Login attempts and back-offs: per process in memory, or shared by every replica in
    Redis (they protect accounts, which every replica serves)."""
    threshold = settings.login_failures_before_backoff
    if redis is None:
        return memory_login_throttle(
            attempts_per_minute=settings.login_attempts_per_minute,
            failures_before_backoff=threshold,
        )
    from app.redis.login_throttle import RedisFailures
    from app.redis.rate_limiter import RedisRateLimiter

    per_minute = settings.login_attempts_per_minute
    return LoginThrottle(
        attempts=RedisRateLimiter(
            redis, per_minute, 60, fallback=MemoryRateLimiter(per_minute, 60), name="login"
        ),
        pairs=RedisFailures(redis, kind="pair", threshold=threshold),
        accounts=RedisFailures(redis, kind="account", threshold=threshold),
    )


def build_rate_limiter(settings: Settings, redis: RedisClient | None) -> QuotaLimiter:
    """The request quota: per process in memory, or one per client across replicas."""
    local = MemoryRateLimiter(settings.rate_limit_requests, settings.rate_limit_window_seconds)
    if redis is None:
        return local
    from app.redis.rate_limiter import RedisRateLimiter

    return RedisRateLimiter(
        redis,
        settings.rate_limit_requests,
        settings.rate_limit_window_seconds,
        fallback=local,
    )


def resilience_snapshot(foundation: Foundation) -> Callable[[], dict[str, Any]]:
    """This process's resilience state as the fleet view shows it: who it is, its breakers,
    its dependencies (bulkhead use, faults)."""
    member = f"{foundation.settings.instance}:{os.getpid()}"

    def state() -> dict[str, Any]:
        return {
            "member": member,
            "instance": foundation.settings.instance,
            "pid": os.getpid(),
            "at": time.time(),
            "breakers": [breaker.snapshot() for breaker in foundation.breakers.all()],
            "dependencies": [dependency.snapshot() for dependency in foundation.dependencies],
        }

    return state


def build_services(foundation: Foundation) -> AppServices:
    """Wire the stores and services from settings (nothing starts until `start`)."""
    settings = foundation.settings
    stores = build_stores(settings, foundation.redis)
    resilience_state = resilience_snapshot(foundation)
    repository = stores.repository
    # Hashing has threads of its own: demo work or file I/O in the shared pool cannot starve
    # logins, and a flood of logins is shed (503) instead of queueing into timeouts.
    hashing = BoundedExecutor(
        "password-hashing",
        workers=settings.hash_workers,
        queue=settings.hash_queue,
        dependency=foundation.hashing,
    )
    if foundation.hashing is not None:
        foundation.hashing.set_probe(lambda: hashing.submit(_nothing))
    hasher = PasswordHasher(rounds=settings.bcrypt_rounds, executor=hashing)
    event_log: EventLog
    if stores.redis is None:
        event_log = MemoryEventLog(
            history_size=settings.event_history_size, history_bytes=settings.event_history_bytes
        )
    else:
        from app.redis.event_log import RedisEventLog

        # Events are bounded in bytes on the way in (APP_EVENT_MAX_BYTES): the count bounds
        # the stream's memory in Redis.
        event_log = RedisEventLog(
            stores.redis,
            history_size=settings.event_history_size,
            history_bytes=settings.event_history_bytes,
            on_lost=lambda: bus.close_streams(),
        )
    bus = EventBus(
        event_log, queue_size=settings.event_queue_size, queue_bytes=settings.event_queue_bytes
    )
    users_cache = TTLCache(
        name="users",
        ttl_seconds=settings.cache_ttl_seconds,
        max_entries=settings.cache_max_entries,
        # Expired copies kept for stale-if-error (the memory store fails only by injection).
        stale_seconds=settings.stale_if_error_seconds,
    )
    throttle = build_login_throttle(settings, stores.redis)
    # Replicas tell each other which users changed and who is in which chat room (Redis).
    invalidate: Invalidate = MemoryInvalidation(users_cache)
    shared_rooms: SharedRooms | None = None
    if stores.redis is not None and stores.backplane is not None:
        from app.redis.chat import RedisRooms
        from app.redis.invalidation import RedisInvalidation

        invalidate = RedisInvalidation(users_cache, stores.backplane)
        shared_rooms = RedisRooms(
            stores.redis, stores.backplane, max_room_members=settings.chat_max_room_members
        )
    store = foundation.store
    if store is not None:
        store.set_probe(lambda: repository.count(USERS))
    users = UserService(
        repository if store is None else GuardedRepository(repository, store),
        hasher,
        users_cache,
        throttle=throttle,
        admin_email=settings.admin_email,
        publish=bus.publish,
        invalidate=invalidate,
    )
    chat = ChatManager(
        messages_per_second=settings.ws_messages_per_second,
        max_room_members=settings.chat_max_room_members,
        shared=shared_rooms,
    )
    pool = ProcessPool(
        workers=settings.process_pool_workers,
        queue_limit=settings.effective_process_pool_queue,
        task_timeout=settings.scoring_task_timeout_seconds,
        warm_up=warm_up,
        warm_at_start=settings.process_pool_warm_up,
        dependency=foundation.process_pool,
        tracer=foundation.tracer,
    )
    if foundation.process_pool is not None:
        foundation.process_pool.set_probe(lambda: pool.probe())
    scoring = ScoringService(
        pool,
        ScoringLimits(
            max_records=settings.scoring_max_records, max_features=settings.scoring_max_features
        ),
        jobs=stores.jobs,
        chunk_records=settings.scoring_job_chunk_records,
        max_result_bytes=settings.scoring_results_max_bytes_per_client,
        publish=bus.publish,
    )
    snapshots = None
    if settings.snapshot_path and isinstance(repository, MemoryRepository):
        snapshots = SnapshotManager(
            repository,
            settings.snapshot_path,
            interval_seconds=settings.snapshot_interval_seconds,
            on_corrupt=settings.snapshot_on_corrupt,
            journal_fsync=settings.journal_fsync,
        )
    health = _health_checker(
        repository, stores, foundation.breakers, pool, hashing, users_cache, bus, chat
    )
    if (identity := stores.identity) is not None:
        # Critical only in name: a loss is reported (degraded), never a reason to leave the
        # Service, since the process already resumed past every id it knew.
        health.register(
            "store_identity", identity.status, critical=True, degraded_if=identity.recently_lost
        )
    if snapshots is not None and snapshots.journal is not None:
        # Critical: a replica that cannot make writes durable leaves the Service.
        health.register("journal", snapshots.journal_status, critical=True)
    return AppServices(
        foundation=foundation,
        repository=repository,
        redis=stores.redis,
        backplane=stores.backplane,
        identity=stores.identity,
        store_wait=StoreWait(stores.redis),
        users=users,
        auth=AuthService(
            users,
            hasher,
            foundation.tokens,
            throttle=throttle,
            revocations=stores.revocations,
        ),
        idempotency=IdempotencyStore(
            stores.idempotency,
            secret=derived_key(settings.jwt_secret_key, "idempotency-fingerprint"),
            # A first request runs at most the request timeout; past twice that, its replica
            # is presumed gone and the key is free again.
            in_flight_seconds=2 * settings.request_timeout_seconds,
        ),
        users_cache=users_cache,
        rendered_users=RepresentationCache(RENDERED_USERS),
        process_pool=pool,
        hashing=hashing,
        thread_pool=ThreadPoolExecutor(
            max_workers=settings.thread_pool_workers, thread_name_prefix="blocking-io"
        ),
        scoring=scoring,
        bus=bus,
        breaker_events=BreakerEvents(foundation.breakers, bus),
        loop_lag=LoopLagMonitor(),
        tickers=TickerDrops(),
        fleet=FleetReporter(stores.fleet, resilience_state()["member"], resilience_state),
        flaky_upstream=(
            SimulatedUpstream(foundation.flaky) if foundation.flaky is not None else None
        ),
        chat=chat,
        sse_quota=ConnectionQuota(settings.sse_max_streams_per_client),
        ws_quota=ConnectionQuota(settings.ws_max_connections_per_client),
        audit=(
            AuditLog(
                bus,
                settings.audit_log_path,
                max_bytes=settings.audit_log_max_bytes,
                backups=settings.audit_log_backups,
            )
            if settings.audit_log_path
            else None
        ),
        snapshots=snapshots,
        revocations=stores.revocations,
        health=health,
    )
