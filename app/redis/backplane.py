"""Redis pub/sub between replicas: one subscriber connection per process, handlers by channel.

Pub/sub delivers to whoever listens at that moment and keeps nothing, so what rides on it
must tolerate a missed message: cache invalidations (a replica that was not listening empties
its cache) and chat frames (said once, like speech). Whatever must not be lost (events) goes
through the event stream instead.

The listener tells its users when it loses Redis and when it hears again (`on_lost`,
`on_restored`), so they can stop trusting what they would have been told meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from app.core.logging import get_logger
from app.redis.client import RedisClient, stop_task

log = get_logger(__name__)

Handler = Callable[[str, bytes], object]  # (channel, payload)
_POLL_SECONDS = 1.0


class Backplane:
    """Publish to channels, and hand what arrives on subscribed patterns to their handlers."""

    def __init__(self, client: RedisClient, *, retry_seconds: float = 0.5) -> None:
        self._client = client
        self._retry_seconds = retry_seconds
        self._handlers: dict[str, Handler] = {}  # glob pattern (our prefix added) -> handler
        self._on_lost: list[Callable[[], object]] = []
        self._on_restored: list[Callable[[], object]] = []
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.connected = False

    def channel(self, name: str) -> str:
        """The full channel name (with the app's key prefix)."""
        return f"{self._client.prefix}{name}"

    def handle(self, pattern: str, handler: Handler) -> None:
        """Call `handler(channel, payload)` for messages on channels matching `pattern` (glob,
        without the prefix). Register before `start`."""
        self._handlers[self.channel(pattern)] = handler

    def on_lost(self, callback: Callable[[], object]) -> None:
        """Call `callback` when the subscription is lost (messages may be missed from now)."""
        self._on_lost.append(callback)

    def on_restored(self, callback: Callable[[], object]) -> None:
        """Call `callback` once subscribed again after a loss (and at the first start)."""
        self._on_restored.append(callback)

    async def publish(self, name: str, payload: bytes) -> int:
        """Send `payload` on a channel; how many subscribers (processes) it was sent to."""
        channel = self.channel(name)
        return int(await self._client.call("pubsub.publish", lambda r: r.publish(channel, payload)))

    async def start(self) -> None:
        """Subscribe, and return once the subscription is in place."""
        self._task = asyncio.get_running_loop().create_task(self._listen())
        await asyncio.wait_for(self._listening.wait(), timeout=self._client.timeout * 5)

    async def _listen(self) -> None:
        while True:
            connection = self._client.dedicated(_POLL_SECONDS + self._client.timeout)
            pubsub = connection.pubsub()
            try:
                await pubsub.psubscribe(*self._handlers)
                self._up()
                while True:
                    message: Any = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=_POLL_SECONDS
                    )
                    if message is not None:
                        self._dispatch(message)
            except (RedisError, OSError) as exc:
                self._down(exc)
            finally:
                await asyncio.shield(self._close_quietly(pubsub, connection))
            await asyncio.sleep(self._retry_seconds)

    @staticmethod
    async def _close_quietly(pubsub: Any, connection: Any) -> None:
        try:
            await pubsub.aclose()
            await connection.aclose()
        except (RedisError, OSError):  # already broken: nothing to tidy
            pass

    def _dispatch(self, message: dict[str, Any]) -> None:
        pattern = message["pattern"]
        pattern = pattern.decode() if isinstance(pattern, bytes) else pattern
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        handler = self._handlers.get(pattern)
        if handler is None:
            return
        try:
            handler(channel.removeprefix(self._client.prefix), message["data"])
        except Exception:
            log.exception("backplane_handler_failed", channel=channel)

    def _up(self) -> None:
        self.connected = True
        self._listening.set()
        for callback in self._on_restored:
            callback()
        log.info("backplane_subscribed", patterns=len(self._handlers))

    def _down(self, exc: BaseException) -> None:
        if self.connected:
            self.connected = False
            log.warning("backplane_lost_redis", error=type(exc).__name__)
            for callback in self._on_lost:
                callback()

    def stats(self) -> dict[str, Any]:
        """Whether the subscription is in place, and what it listens to."""
        return {"subscribed": self.connected, "patterns": len(self._handlers)}

    async def close(self) -> None:
        """Stop listening."""
        task, self._task = self._task, None
        if task is None:
            return
        if not await stop_task(task):
            log.warning("backplane_listener_did_not_stop")
