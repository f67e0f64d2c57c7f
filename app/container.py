"""The composition root: every long-lived object of a running app, built from settings in one
place, started and closed in order by the lifespan (`app/main.py`), and handed to requests as
the lifespan's typed state, which `app/api/deps.py` reads."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypedDict

from app.core.bounded_executor import BoundedExecutor
from app.core.breaker import BreakerRegistry
from app.core.clients import ClientIdentifier
from app.core.config import Settings
from app.core.connection_quota import ConnectionQuota
from app.core.lifecycle import Lifecycle
from app.core.logging import get_logger
from app.core.security import PasswordHasher, TokenCodec
from app.db.memory import InMemoryRepository
from app.services.audit import AuditLog
from app.services.auth import AuthService
from app.services.cache import TTLCache
from app.services.chat import ChatManager
from app.services.events import EventBus
from app.services.health import HealthChecker
from app.services.idempotency import IdempotencyStore
from app.services.login_throttle import LoginThrottle
from app.services.process_pool import ProcessPool
from app.services.scoring.service import ScoringService
from app.services.scoring.worker import ScoringLimits, warm_up
from app.services.snapshots import SnapshotManager
from app.services.users import USERS, UserService

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Foundation:
    """What the app builds before the lifespan runs, because the middleware chain and the
    server's signal handling need it: settings, lifecycle, tokens, client keys, breakers."""

    settings: Settings
    lifecycle: Lifecycle
    tokens: TokenCodec
    clients: ClientIdentifier
    breakers: BreakerRegistry


@dataclass(frozen=True)
class AppServices:
    """Everything a request handler may need, wired once per app."""

    foundation: Foundation
    repository: InMemoryRepository
    users: UserService
    auth: AuthService
    idempotency: IdempotencyStore
    users_cache: TTLCache
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
    health: HealthChecker
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Start what runs in the background: threads, worker processes, cache cleanup, the
        audit log, and the watcher that ends long-lived connections when shutdown begins."""
        # Blocking calls (password hashing, file I/O) go through asyncio.to_thread: this pool.
        asyncio.get_running_loop().set_default_executor(self.thread_pool)
        if self.snapshots is not None:
            # First: a snapshot that cannot be used stops start-up before anything else runs.
            await self.snapshots.load()
            self.snapshots.start()
        await self.process_pool.start()
        self.users_cache.start_cleanup(max(1.0, self.foundation.settings.cache_ttl_seconds))
        if self.audit is not None:
            await self.audit.start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._end_streams()))

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
        await self.chat.close_all()
        await self.scoring.close()
        await self.process_pool.close()
        if self.snapshots is not None:
            await self.snapshots.stop()  # after the last request: nothing written is lost
        if self.audit is not None:
            await self.audit.stop()
        await self.bus.close()
        await self.users_cache.stop_cleanup()
        # Not waited on from a thread of its own pool (it cannot join itself): queued calls are
        # cancelled, running ones finish, and the interpreter joins the threads at exit.
        self.hashing.shutdown()
        self.thread_pool.shutdown(wait=False, cancel_futures=True)


class AppState(TypedDict):
    """What the lifespan yields; Starlette hands a copy to every request as `request.state`."""

    services: AppServices


def _runtime_stats() -> dict[str, int]:
    # What leaks show up in first: tasks that never end, threads that pile up.
    return {"asyncio_tasks": len(asyncio.all_tasks()), "threads": threading.active_count()}


def _health_checker(
    repository: InMemoryRepository,
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
    checker.register("breakers", breakers.stats, degraded_if=lambda: breakers.any_open)
    checker.register("process_pool", pool.stats, degraded_if=lambda: pool.degraded)
    checker.register("password_hashing", hashing.stats)
    checker.register("cache", cache.stats)
    checker.register("event_bus", bus.stats)
    checker.register("chat", chat.stats)
    checker.register("runtime", _runtime_stats)
    return checker


def build_services(foundation: Foundation) -> AppServices:
    """Wire the repository and services from settings (nothing starts until `start`)."""
    settings = foundation.settings
    repository = InMemoryRepository()
    # Hashing has threads of its own: demo work or file I/O in the shared pool cannot starve
    # logins, and a flood of logins is shed (503) instead of queueing into timeouts.
    hashing = BoundedExecutor(
        "password-hashing", workers=settings.hash_workers, queue=settings.hash_queue
    )
    hasher = PasswordHasher(rounds=settings.bcrypt_rounds, executor=hashing)
    bus = EventBus(
        history_size=settings.event_history_size,
        history_bytes=settings.event_history_bytes,
        queue_size=settings.event_queue_size,
        queue_bytes=settings.event_queue_bytes,
    )
    users_cache = TTLCache(
        name="users", ttl_seconds=settings.cache_ttl_seconds, max_entries=settings.cache_max_entries
    )
    users = UserService(repository, hasher, users_cache, publish=bus.publish)
    chat = ChatManager(
        messages_per_second=settings.ws_messages_per_second,
        max_room_members=settings.chat_max_room_members,
    )
    pool = ProcessPool(
        workers=settings.process_pool_workers,
        queue_limit=settings.effective_process_pool_queue,
        task_timeout=settings.scoring_task_timeout_seconds,
        warm_up=warm_up,
    )
    scoring = ScoringService(
        pool,
        ScoringLimits(
            max_records=settings.scoring_max_records, max_features=settings.scoring_max_features
        ),
        job_ttl_seconds=settings.scoring_job_ttl_seconds,
        chunk_records=settings.scoring_job_chunk_records,
        publish=bus.publish,
    )
    snapshots = None
    if settings.snapshot_path:
        snapshots = SnapshotManager(
            repository,
            settings.snapshot_path,
            interval_seconds=settings.snapshot_interval_seconds,
            on_corrupt=settings.snapshot_on_corrupt,
        )
    return AppServices(
        foundation=foundation,
        repository=repository,
        users=users,
        auth=AuthService(
            users,
            hasher,
            foundation.tokens,
            throttle=LoginThrottle(
                attempts_per_minute=settings.login_attempts_per_minute,
                failures_before_backoff=settings.login_failures_before_backoff,
            ),
        ),
        idempotency=IdempotencyStore(
            ttl_seconds=settings.idempotency_ttl_seconds, max_keys=settings.idempotency_max_keys
        ),
        users_cache=users_cache,
        process_pool=pool,
        hashing=hashing,
        thread_pool=ThreadPoolExecutor(
            max_workers=settings.thread_pool_workers, thread_name_prefix="blocking-io"
        ),
        scoring=scoring,
        bus=bus,
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
        health=_health_checker(
            repository, foundation.breakers, pool, hashing, users_cache, bus, chat
        ),
    )
