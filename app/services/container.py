"""The long-lived objects of a running app: built from settings, started and closed by the
lifespan in order, reached by routes through `app/api/deps.py`."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from app.core.config import Settings
from app.core.lifecycle import Lifecycle
from app.core.logging import get_logger
from app.core.security import PasswordHasher, TokenCodec
from app.db.base import Repository
from app.db.memory import InMemoryRepository
from app.middleware.resilience import BreakerRegistry, BreakerState
from app.services.audit import AuditLog
from app.services.auth import AuthService
from app.services.cache import TTLCache
from app.services.chat import ChatManager
from app.services.events import EventBus
from app.services.executors import ProcessPool
from app.services.health import Degraded, HealthChecker
from app.services.idempotency import IdempotencyStore
from app.services.scoring import ScoringLimits
from app.services.scoring_service import ScoringService
from app.services.snapshots import SnapshotManager
from app.services.users import UserService

log = get_logger(__name__)


@dataclass(frozen=True)
class AppServices:
    """Everything a request handler may need, wired once per app."""

    repository: InMemoryRepository
    users: UserService
    auth: AuthService
    idempotency: IdempotencyStore
    users_cache: TTLCache
    process_pool: ProcessPool
    thread_pool: ThreadPoolExecutor
    scoring: ScoringService
    bus: EventBus
    chat: ChatManager
    audit: AuditLog | None
    snapshots: SnapshotManager | None
    health: HealthChecker
    cache_cleanup_seconds: float
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, lifecycle: Lifecycle) -> None:
        """Start what runs in the background: threads, worker processes, cache cleanup, the
        audit log, and the watcher that ends long-lived connections when shutdown begins."""
        # Blocking calls (password hashing, file I/O) go through asyncio.to_thread: this pool.
        asyncio.get_running_loop().set_default_executor(self.thread_pool)
        if self.snapshots is not None:
            # First: a snapshot that cannot be used stops start-up before anything else runs.
            await self.snapshots.load()
            self.snapshots.start()
        await self.process_pool.start()
        self.users_cache.start_cleanup(self.cache_cleanup_seconds)
        if self.audit is not None:
            await self.audit.start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._end_streams(lifecycle)))

    async def _end_streams(self, lifecycle: Lifecycle) -> None:
        # At the start of shutdown, before uvicorn closes sockets its own way (1012 for
        # WebSockets): chat members get 1001, SSE streams end cleanly.
        await lifecycle.wait_for_shutdown()
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
        self.thread_pool.shutdown(wait=False, cancel_futures=True)


def _health_checks(
    repository: Repository,
    breakers: BreakerRegistry,
    pool: ProcessPool,
    cache: TTLCache,
    bus: EventBus,
    chat: ChatManager,
) -> HealthChecker:
    checker = HealthChecker(timeout_seconds=1.0)

    async def repository_check() -> dict[str, int]:
        # Takes the collection lock: a repository wedged by a stuck transaction fails here.
        return {"users": await repository.count("users")}

    async def breakers_check() -> object:
        states = {b.name: str(b.state) for b in breakers.all()}
        open_ = sorted(name for name, state in states.items() if state != BreakerState.CLOSED)
        return Degraded(states) if open_ else states

    async def pool_check() -> object:
        detail = {
            "workers": pool.workers,
            "pids": pool.worker_pids(),
            "alive": len(pool.worker_pids()),
            "in_flight": pool.in_flight,
            "capacity": pool.capacity,
            "restarts": pool.restarts,
        }
        if detail["alive"] < pool.workers or pool.in_flight >= pool.capacity:
            return Degraded(detail)
        return detail

    async def cache_check() -> object:
        return cache.stats()

    async def bus_check() -> object:
        return {
            "last_id": bus.last_id,
            "published": bus.published,
            "delivered": bus.delivered,
            "dropped": bus.dropped,
            "subscribers": bus.subscriber_counts(),
        }

    async def chat_check() -> object:
        return {"connections": chat.connection_count, "rooms": len(chat.rooms())}

    async def runtime_check() -> object:
        # What leaks show up in first: tasks that never end, threads that pile up.
        return {"asyncio_tasks": len(asyncio.all_tasks()), "threads": threading.active_count()}

    checker.register("repository", repository_check, critical=True)
    checker.register("breakers", breakers_check, critical=False)
    checker.register("process_pool", pool_check, critical=False)
    checker.register("cache", cache_check, critical=False)
    checker.register("event_bus", bus_check, critical=False)
    checker.register("chat", chat_check, critical=False)
    checker.register("runtime", runtime_check, critical=False)
    return checker


def build_services(
    settings: Settings, tokens: TokenCodec, breakers: BreakerRegistry
) -> AppServices:
    """Wire the repository and services from settings (nothing starts until `start`)."""
    repository = InMemoryRepository()
    hasher = PasswordHasher(rounds=settings.bcrypt_rounds)
    bus = EventBus(history_size=settings.event_history_size, queue_size=settings.event_queue_size)
    users_cache = TTLCache(
        name="users", ttl_seconds=settings.cache_ttl_seconds, max_entries=settings.cache_max_entries
    )
    users = UserService(repository, hasher, users_cache, publish=bus.publish)
    chat = ChatManager(messages_per_second=settings.ws_messages_per_second)
    pool = ProcessPool(
        workers=settings.process_pool_workers,
        queue_limit=settings.effective_process_pool_queue,
        task_timeout=settings.scoring_task_timeout_seconds,
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
    return AppServices(
        repository=repository,
        users=users,
        auth=AuthService(users, hasher, tokens),
        idempotency=IdempotencyStore(
            ttl_seconds=settings.idempotency_ttl_seconds, max_keys=settings.idempotency_max_keys
        ),
        users_cache=users_cache,
        process_pool=pool,
        thread_pool=ThreadPoolExecutor(
            max_workers=settings.thread_pool_workers, thread_name_prefix="blocking-io"
        ),
        scoring=scoring,
        bus=bus,
        chat=chat,
        audit=AuditLog(bus, settings.audit_log_path) if settings.audit_log_path else None,
        snapshots=(
            SnapshotManager(
                repository,
                settings.snapshot_path,
                interval_seconds=settings.snapshot_interval_seconds,
                on_corrupt=settings.snapshot_on_corrupt,
            )
            if settings.snapshot_path
            else None
        ),
        health=_health_checks(repository, breakers, pool, users_cache, bus, chat),
        cache_cleanup_seconds=max(1.0, settings.cache_ttl_seconds),
    )
