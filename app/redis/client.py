"""The connection to Redis: one bounded pool per process, a deadline on every call, metrics.

Every command the app sends goes through `RedisClient.call`, which is where the rules live:
- a call that does not finish within `timeout_seconds` (waiting for a pooled connection
  included) is abandoned, so no request waits on Redis longer than that;
- any failure of Redis (refused, reset, timed out, loading, read-only, out of memory) becomes
  `StoreUnavailable`: a 503 problem with `Retry-After`, never a 500 and never a hang;
- latency and errors are recorded per operation, the name the caller gives the call.
The pool reconnects by itself: a connection broken by a Redis restart is dropped and the next
call opens a new one, so recovery needs nothing from the operator.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from opentelemetry.trace import SpanKind, Tracer
from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.core.breaker import BreakerRegistry
from app.core.dependency import Dependency
from app.core.exceptions import StoreUnavailable
from app.core.faults import InjectedFault
from app.core.logging import get_logger
from app.redis.connection import ConnectionSource, SentinelTarget

log = get_logger(__name__)

T = TypeVar("T")


class Script(Protocol):
    """A registered Lua script: `run(keys, args)`, or `run(keys, args, client)` on that client."""

    def __call__(
        self, keys: list[str], args: list[Any], client: Redis | None = None
    ) -> Awaitable[Any]: ...


REDIS_LATENCY = Histogram(
    "redis_command_duration_seconds",
    "Time Redis calls took, by operation (a script or a pipeline counts as one call).",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
REDIS_ERRORS = Counter(
    "redis_command_errors_total",
    "Redis calls that failed or timed out, by operation and error.",
    ["operation", "error"],
)


_ABANDONED: set[asyncio.Future[Any]] = set()


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel a command nobody waits for any more, again until it stops (see `call`)."""
    _ABANDONED.add(task)
    task.add_done_callback(_ABANDONED.discard)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning

    def cancel_again() -> None:
        if not task.done():
            task.cancel()
            asyncio.get_running_loop().call_later(0.2, cancel_again)

    cancel_again()


async def settle(awaitable: Awaitable[Any], seconds: float, what: str) -> bool:
    """Await `awaitable` for at most `seconds`, then abandon it (see `call`): for closing
    connections, which must never hang a shutdown. True if it finished (its error, if any, is
    raised); False if it was abandoned."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        task.result()
        return True
    _abandon(task)
    log.warning("redis_cleanup_abandoned", what=what, after_seconds=seconds)
    return False


async def stop_task(task: asyncio.Task[Any], *, attempts: int = 10) -> bool:
    """Cancel a task that waits on Redis, asking again until it stops (see `call`): True once
    it has stopped, False if it would not within `attempts` rounds of 0.2 s."""
    for _ in range(attempts):
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
        if task.done():
            return True
    return False


class NotReplicated(RedisError):
    """A write the primary applied but fewer replicas than `APP_REDIS_MIN_REPLICAS_ACK`
    confirmed in time: not acknowledged, since a failover now could lose it."""


class RedisUnavailable(StoreUnavailable):
    """`StoreUnavailable` from a Redis call, saying whether Redis itself failed (`outage`:
    unreachable, timed out, loading, read-only, out of memory) or answered an error, and
    whether a read may be tried again (`retriable`)."""

    def __init__(self, detail: str, *, outage: bool, retriable: bool = False) -> None:
        super().__init__(detail)
        self.outage = outage
        self.retriable = retriable


def worth_retrying(exc: BaseException) -> bool:
    """Whether a read that failed with `exc` is worth one more try: the connection was
    refused or reset, or Redis is loading or read-only for a moment (a restart, a failover).
    Never after a timeout: Redis is then slow or stalled, and a retry would only double the
    wait (and the load); the breaker and the stale copy answer that case."""
    if isinstance(exc, RedisUnavailable):
        return exc.retriable
    if isinstance(exc, InjectedFault):
        return True  # a drill's reset connection, retried as a real one would be
    return isinstance(exc, RedisConnectionError | ReadOnlyError) and not isinstance(
        exc, RedisTimeoutError
    )


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says Redis failed (what its breaker counts), rather than that it
    answered a command with an error (a script's bug, a wrong type: not an outage)."""
    if isinstance(exc, RedisUnavailable):
        return exc.outage
    if isinstance(exc, NotReplicated):
        return False  # the primary answers; its replicas are behind (reads are unaffected)
    if isinstance(exc, ReadOnlyError):
        return True  # a replica promoted, or a primary demoted: no writes here now
    if isinstance(exc, ResponseError):
        return str(exc).startswith(("OOM", "LOADING", "MASTERDOWN", "CLUSTERDOWN"))
    return isinstance(exc, RedisError | OSError | TimeoutError)


def _refused(detail: str, retry_after: int) -> StoreUnavailable:
    return StoreUnavailable(detail, retry_after=retry_after)


class RedisClient:
    """A Redis connection pool with the app's rules for every call (see the module docstring).

    `prefix` starts every key the app writes, so one Redis can hold other data too. With
    `sentinel`, the primary is the one the sentinels name (app/redis/connection.py). With
    `min_replicas_ack`, a `durable` write is acknowledged only once that many replicas have it.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        max_connections: int,
        prefix: str = "ra:",
        breakers: BreakerRegistry | None = None,
        max_in_flight: int | None = None,
        sentinel: SentinelTarget | None = None,
        min_replicas_ack: int = 0,
        tracer: Tracer | None = None,
    ) -> None:
        self.timeout = timeout_seconds
        # With tracing on: a client span per round trip (`redis <operation>`).
        self.tracer = tracer
        self.prefix = prefix
        self.min_replicas_ack = min_replicas_ack
        self._source = ConnectionSource(url, sentinel, timeout_seconds)
        self.display_url = self._source.display
        # Every connection of this process carries this name, so other replicas can tell from
        # `CLIENT LIST` whether this one is alive (a killed process's connections close at once).
        self.replica_name = f"{prefix}replica:{secrets.token_hex(6)}"
        self._pool = self._source.pool(
            max_connections=max_connections,
            timeout=timeout_seconds,  # waiting for a free connection counts against the deadline
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            # One immediate retry on a fresh connection: after a Redis restart every pooled
            # connection is dead, and the first call on each should not fail for that alone.
            # (The asyncio `Retry`: the synchronous one, given to this pool, never retries.)
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
            client_name=self.replica_name,
        )
        self.redis: Redis = Redis(connection_pool=self._pool)
        self._last_error: str | None = None
        # Redis as a named dependency: its own breaker ("redis"), a bulkhead, and a PING
        # that closes the breaker as soon as Redis answers again (app/core/dependency.py).
        self.dependency = Dependency(
            "redis",
            breakers or BreakerRegistry(),
            max_in_flight=max_in_flight or max_connections,
            timeout_seconds=timeout_seconds,
            refuse=_refused,
            is_failure=is_outage,
            is_retriable=worth_retrying,
            probe=self.redis.ping,
            probe_timeout_seconds=timeout_seconds,
            # At most a second between PINGs while the breaker is open: a restart or a
            # Sentinel failover brings Redis back within seconds, and writes should follow
            # within one more (one PING per process per second costs Redis nothing).
            probe_backoff_seconds=(0.25, 1.0),
        )

    async def call(
        self,
        operation: str,
        command: Callable[[Redis], Awaitable[T]],
        *,
        idempotent: bool = False,
        durable: bool = False,
    ) -> T:
        """Run `command` through the dependency's pipeline (breaker, bulkhead, deadline, and
        for an `idempotent` read, retries), with the metrics and the error mapping. A `durable`
        write (data a client is told is saved) waits for `min_replicas_ack` replicas."""
        if durable and self.min_replicas_ack:
            command = self._replicated(command)
        try:
            return await self.dependency.call(
                lambda timeout: self._call(operation, command, timeout), idempotent=idempotent
            )
        except TimeoutError:
            raise RedisUnavailable(
                "The shared store did not answer in time; retry shortly.", outage=True
            ) from None
        except InjectedFault:
            raise RedisUnavailable(
                "The shared store did not answer; retry shortly.", outage=True, retriable=True
            ) from None

    def _replicated(
        self, command: Callable[[Redis], Awaitable[T]]
    ) -> Callable[[Redis], Awaitable[T]]:
        """`command`, then WAIT on the same connection (WAIT counts the replicas that have
        this connection's writes) for at most most of the call's time."""
        wanted = self.min_replicas_ack
        wait_ms = max(1, int(self.timeout * 800))  # leaves a fifth of the deadline to answer

        async def run(redis: Redis) -> T:
            async with redis.client() as connection:
                result = await command(connection)
                copies = int(await connection.wait(wanted, wait_ms))
            if copies < wanted:
                raise NotReplicated(f"{copies} of {wanted} replicas confirmed within {wait_ms} ms")
            return result

        return run

    async def _call(
        self, operation: str, command: Callable[[Redis], Awaitable[T]], within_seconds: float
    ) -> T:
        if self.tracer is None:
            return await self._round_trip(operation, command, within_seconds)
        with self.tracer.start_as_current_span(
            f"redis {operation}",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": "redis", "db.operation.name": operation},
        ):
            return await self._round_trip(operation, command, within_seconds)

    async def _round_trip(
        self, operation: str, command: Callable[[Redis], Awaitable[T]], within_seconds: float
    ) -> T:
        started = time.perf_counter()
        # The command runs as a task of its own and the deadline is kept by waiting on it:
        # redis-py can hold on to a cancellation while it (re)connects, and a deadline that
        # relied on cancelling the command could then wait for ever.
        task: asyncio.Future[T] = asyncio.ensure_future(command(self.redis))
        try:
            done, _ = await asyncio.wait({task}, timeout=within_seconds)
            if done:
                result = task.result()
        except (RedisError, OSError) as exc:
            error = type(exc).__name__
            REDIS_ERRORS.labels(operation=operation, error=error).inc()
            self._last_error = error
            log.warning("redis_call_failed", operation=operation, error=error, detail=str(exc))
            raise RedisUnavailable(
                "The shared store did not answer in time; retry shortly.",
                outage=is_outage(exc),
                retriable=worth_retrying(exc),
            ) from None
        finally:
            if not task.done():
                _abandon(task)
            REDIS_LATENCY.labels(operation=operation).observe(time.perf_counter() - started)
        if not done:
            # Raised out here: a TimeoutError is an OSError, and the handler above would count
            # and log it a second time, and hide from the pipeline that it was a timeout (which
            # it tells apart from a cut-off by the request's deadline).
            REDIS_ERRORS.labels(operation=operation, error="TimeoutError").inc()
            self._last_error = "TimeoutError"
            detail = f"no answer within {within_seconds:g} s"
            log.warning(
                "redis_call_failed", operation=operation, error="TimeoutError", detail=detail
            )
            raise TimeoutError(detail)
        return result

    async def replica_alive(self, name: str) -> bool:
        """Whether any connection named `name` (another replica's `replica_name`) is open."""
        clients = await self.call("client_list", lambda r: r.client_list(), idempotent=True)
        return any(client.get("name") == name for client in clients)

    async def ping(self) -> dict[str, Any]:
        """A round trip to Redis (readiness); raises `StoreUnavailable` if there is none.
        It bypasses the breaker: readiness asks Redis itself, not what the breaker remembers."""
        started = time.perf_counter()
        try:
            await self._call("ping", lambda r: r.ping(), self.timeout)
        except TimeoutError:
            raise RedisUnavailable("Redis did not answer a PING in time.", outage=True) from None
        return {
            "url": self.display_url,
            "round_trip_ms": round((time.perf_counter() - started) * 1000, 2),
            "last_error": self._last_error,
        }

    def script(self, source: str) -> Script:
        """A Lua script sent by its SHA (EVALSHA), loaded again when Redis lost it. Called with
        `client`, it runs on that client's connection (a `durable` write's, say)."""
        registered = self.redis.register_script(source)

        def run(keys: list[str], args: list[Any], client: Redis | None = None) -> Awaitable[Any]:
            return registered(keys=keys, args=args, client=client)

        return run

    def dedicated(self, read_timeout_seconds: float) -> Redis:
        """A client of its own (one connection) for calls that wait on purpose: a blocking
        XREAD, a pub/sub subscription. Its reads may take `read_timeout_seconds`."""
        return self._source.single(
            socket_timeout=read_timeout_seconds,
            socket_connect_timeout=self.timeout,
            health_check_interval=30,
            client_name=self.replica_name,
        )

    async def close(self) -> None:
        """Stop probing, then close every pooled connection, within the timeout (a connection
        redis-py will not let go of is abandoned: a shutdown never waits on Redis for ever)."""
        await self.dependency.close()
        await settle(self._close(), max(1.0, self.timeout), "pool")
        await settle(self._source.close(), max(1.0, self.timeout), "sentinels")

    async def _close(self) -> None:
        await self.redis.aclose()
        await self._pool.disconnect()
