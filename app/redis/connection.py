"""Where the app's Redis connections come from: one address (`APP_REDIS_URL`), or whichever
primary the sentinels name (`APP_REDIS_SENTINELS`).

With Sentinel, every new connection asks the sentinels for the primary's address, so after a
failover the pool finds the new primary by itself: a connection to the old one fails (refused,
or "READONLY" once it is back as a replica), is dropped, and the next one goes to the new
primary. While the sentinels have no healthy primary to name, a connection cannot be opened,
which the caller sees as an outage like any other (503 with `Retry-After`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool


def redacted_url(url: str) -> str:
    """The URL with its password (and user name) replaced: what logs and health may show."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class SentinelTarget:
    """The sentinels to ask (host, port) and the name of the primary they monitor; `password`
    if the sentinels themselves require one."""

    addresses: tuple[tuple[str, int], ...]
    master: str
    password: str | None = None


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel-managed pool that waits for a free connection (within its timeout), as the
    single-address pool does, instead of failing at once when every connection is busy."""


class ConnectionSource:
    """Makes the pools and the single connections of one Redis deployment.

    `url` always gives the password, database and TLS; its host and port are used only
    without `sentinel`.
    """

    def __init__(self, url: str, sentinel: SentinelTarget | None, timeout_seconds: float) -> None:
        self._url = url
        self._sentinel = sentinel
        self._manager: Sentinel | None = None
        if sentinel is not None:
            # redis-py's Sentinel classes carry no type hints.
            self._manager = Sentinel(  # type: ignore[no-untyped-call]
                list(sentinel.addresses),
                sentinel_kwargs={
                    "socket_timeout": timeout_seconds,
                    "socket_connect_timeout": timeout_seconds,
                    "password": sentinel.password,
                },
            )

    @property
    def display(self) -> str:
        """What logs and health may show: the URL without its password, or the sentinels."""
        if self._sentinel is None:
            return redacted_url(self._url)
        sentinels = ",".join(f"{host}:{port}" for host, port in self._sentinel.addresses)
        return f"sentinel://{sentinels}/{self._sentinel.master}"

    def _sentinel_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(parse_url(self._url))
        kwargs.pop("host", None)
        kwargs.pop("port", None)
        if kwargs.pop("connection_class", None) is SSLConnection:
            kwargs["ssl"] = True
        return kwargs

    def pool(self, *, max_connections: int, timeout: float, **options: Any) -> ConnectionPool:
        """A pool of at most `max_connections`; a caller waits `timeout` for a free one."""
        if self._manager is None or self._sentinel is None:
            pool: ConnectionPool = BlockingConnectionPool.from_url(
                self._url, max_connections=max_connections, timeout=timeout, **options
            )
            return pool
        return _BlockingSentinelPool(  # type: ignore[no-untyped-call]
            self._sentinel.master,
            self._manager,
            max_connections=max_connections,
            timeout=timeout,
            **self._sentinel_kwargs(),
            **options,
        )

    def single(self, **options: Any) -> Redis:
        """A client with a connection of its own (a blocking read, a subscription)."""
        if self._manager is None or self._sentinel is None:
            return Redis.from_url(self._url, **options)
        pool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
            self._sentinel.master, self._manager, **self._sentinel_kwargs(), **options
        )
        return Redis.from_pool(pool)

    async def close(self) -> None:
        """Close the connections to the sentinels (the pools are closed by their owners)."""
        if self._manager is not None:
            await self._manager.aclose()
