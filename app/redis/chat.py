"""Chat rooms across replicas: who is in a room lives in Redis, frames travel by pub/sub.

- Membership: one sorted set per room, member name -> the time its claim expires, and a hash
  name -> the claim's token. Joining is one script (drop expired claims, refuse a taken name or
  a full room, claim), so a name is unique in a room and the room cap holds across replicas.
  Each replica renews its members' claims every `ttl / 3`; a replica that dies without saying
  goodbye frees its names when their claims expire (`ttl`). Leaving and renewing check the
  token, so a late goodbye from one replica never removes a name another replica now holds.
- Frames: a broadcast, a join or leave notice, or a direct message is published on
  `chat:<room>`; every replica (the sender's too) hands it to its own members in that room, so
  members see one order whichever replica they are on. Pub/sub keeps nothing: a frame is said
  once, like speech; a replica that loses Redis closes its members' sockets with 1013 (try
  again later) so their clients reconnect and join again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from collections.abc import Callable
from typing import Any

import orjson

from app.core.logging import get_logger
from app.redis.backplane import Backplane
from app.redis.client import RedisClient
from app.services.chat import NameTaken, RoomFull

log = get_logger(__name__)

# KEYS: the room's claims (zset), its tokens (hash). ARGV: name, token, ttl ms, room cap.
_CLAIM = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(expired))
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 'taken' end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 'full' end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
redis.call('PEXPIRE', KEYS[2], 2 * ttl)
return 'ok'
"""

# KEYS: as above. ARGV: name, token, then the new ttl in ms (renew) or nothing (release).
_SETTLE = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] then
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  local ttl = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 2 * ttl)
  redis.call('PEXPIRE', KEYS[2], 2 * ttl)
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
"""

# KEYS: the room's claims. ARGV: name. 1 if the name holds a live claim.
_PRESENT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expires and tonumber(expires) > now then return 1 end
return 0
"""

Deliver = Callable[[str, dict[str, Any], str | None, str | None], object]


class SharedRooms:
    """The chat manager's view of rooms that span replicas (see the module docstring)."""

    def __init__(
        self,
        client: RedisClient,
        backplane: Backplane,
        *,
        max_room_members: int,
        claim_ttl_seconds: float = 30.0,
    ) -> None:
        self._client = client
        self._backplane = backplane
        self.max_room_members = max_room_members
        self._ttl_ms = max(1, math.ceil(claim_ttl_seconds * 1000))
        self._claim = client.script(_CLAIM)
        self._settle = client.script(_SETTLE)
        self._present = client.script(_PRESENT)
        self._tokens: dict[tuple[str, str], str] = {}  # this replica's members
        self._deliver: Deliver | None = None
        self._renewer: asyncio.Task[None] | None = None

    def _keys(self, room: str) -> list[str]:
        base = f"{self._client.prefix}chat:{{{room}}}"
        return [f"{base}:claims", f"{base}:tokens"]

    def attach(self, deliver: Deliver, on_lost: Callable[[], object]) -> None:
        """Where frames for this replica's members go, and what to do when Redis is lost."""
        self._deliver = deliver
        self._backplane.handle("chat:*", self._received)
        self._backplane.on_lost(on_lost)

    def start(self) -> None:
        """Renew this replica's claims until `close`."""
        self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def claim(self, room: str, name: str) -> None:
        """Hold `name` in `room` for this replica; `NameTaken` or `RoomFull` otherwise."""
        token = secrets.token_hex(8)
        args = [name, token, self._ttl_ms, self.max_room_members]
        keys = self._keys(room)
        verdict = await self._client.call("chat.claim", lambda r: self._claim(keys, args))
        verdict = verdict.decode() if isinstance(verdict, bytes) else verdict
        if verdict == "taken":
            raise NameTaken(name)
        if verdict == "full":
            raise RoomFull(room)
        self._tokens[(room, name)] = token

    async def release(self, room: str, name: str) -> None:
        """Give the name back (only the claim this replica holds)."""
        token = self._tokens.pop((room, name), None)
        if token is not None:
            keys = self._keys(room)
            await self._client.call("chat.release", lambda r: self._settle(keys, [name, token]))

    async def present(self, room: str, name: str) -> bool:
        """Whether someone holds `name` in `room`, on any replica."""
        keys = self._keys(room)[:1]
        return bool(
            await self._client.call(
                "chat.present", lambda r: self._present(keys, [name]), idempotent=True
            )
        )

    async def relay(
        self, room: str, payload: dict[str, Any], *, exclude: str | None, to: str | None
    ) -> None:
        """Publish a frame for the room's members on every replica."""
        message = orjson.dumps({"payload": payload, "exclude": exclude, "to": to})
        await self._backplane.publish(f"chat:{room}", message)

    def _received(self, channel: str, data: bytes) -> None:
        room = channel.removeprefix("chat:")
        message = orjson.loads(data)
        if self._deliver is not None:
            self._deliver(room, message["payload"], message["exclude"], message["to"])

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            for (room, name), token in list(self._tokens.items()):
                with contextlib.suppress(Exception):  # the next round tries again
                    await self._renew(room, name, token)

    async def _renew(self, room: str, name: str, token: str) -> None:
        keys, args = self._keys(room), [name, token, self._ttl_ms]
        await self._client.call("chat.renew", lambda r: self._settle(keys, args))

    def forget_all(self) -> None:
        """Drop this replica's claims from memory (its members are being closed)."""
        self._tokens.clear()

    async def close(self) -> None:
        """Stop renewing."""
        task, self._renewer = self._renewer, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
