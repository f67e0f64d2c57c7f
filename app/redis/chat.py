"""Chat rooms across replicas: who is in a room lives in Redis, frames travel by pub/sub.

- Membership: one sorted set per room, member name -> the time its lease expires, and a hash
  name -> the lease's token (`<replica>|<random>`). Joining is one script (drop expired leases,
  refuse a taken name or a full room, claim), so a name is unique in a room and the room cap
  holds across replicas. Each replica renews its members' leases every `lease / 3`, one script
  per room. Leaving and renewing check the token, so a late goodbye from one replica never
  removes a name another replica now holds.
- A join that finds the name taken asks the holder's replica (`chatctl:<replica>`, answered
  within `ASK_SECONDS`) whether that member is still connected. Yes: 1008, the name is taken.
  No (its connection ended and the name is still being given back, say after a Redis blip):
  1013 "try again later", which clients retry, and the holder gives the name back at once. No
  answer: the join asks Redis (`CLIENT LIST`; every connection of a replica carries its name,
  and a killed process's connections close at once) whether the holder's replica is still
  connected; if not, the join takes the name over and the others hear the old member `leave`.
- Leases expire `LEASE_SECONDS` after their last renewal (a replica cut off from Redis for
  longer loses its members' names); the replica whose renewal drops an expired lease
  announces that member's `leave`. A name whose release failed (Redis away) is given back as
  soon as Redis answers again.
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
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from app.core.exceptions import NameHeldBriefly, NameTaken, RoomFull, StoreUnavailable
from app.core.logging import get_logger
from app.redis.backplane import Backplane
from app.redis.client import RedisClient

log = get_logger(__name__)

# How long a member's name outlives its replica's last renewal.
LEASE_SECONDS = 5.0
# How long a join waits for the holder's replica to say whether its member is still there.
ASK_SECONDS = 0.3

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# Drops the room's expired claims; leaves their names in `expired`.
_EXPIRE = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(expired))
end
"""

# KEYS: the room's claims (zset: name -> expiry ms), its tokens (hash: name -> token).
# ARGV: name, token, lease ms, room cap. Returns {verdict, the holder's token (when taken),
# {names whose leases had expired}}.
_CLAIM = (
    _NOW
    + _EXPIRE
    + """
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expires then
  local holder = redis.call('HGET', KEYS[2], ARGV[1]) or ''
  return {'taken', holder, expired}
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return {'full', '', expired} end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
redis.call('PEXPIRE', KEYS[2], 2 * ttl)
return {'ok', '', expired}
"""
)

# KEYS: as above. ARGV: name, the dead holder's token, the new token, lease ms. 1 if the name
# changed hands (the dead holder's claim was still there), else 0.
_TAKE_OVER = (
    _NOW
    + """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
local ttl = tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
redis.call('PEXPIRE', KEYS[2], 2 * ttl)
return 1
"""
)

# KEYS: as above. ARGV: lease ms, then name, token pairs (this replica's members in the room).
# Drops expired claims, renews ours that still hold their token. Returns {{expired names},
# {our names whose claim was gone or someone else's}}.
_RENEW = (
    _NOW
    + _EXPIRE
    + """
local ttl = tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
redis.call('PEXPIRE', KEYS[2], 2 * ttl)
return {expired, lost}
"""
)

# KEYS: as above. ARGV: name, token. Gives the name back if the claim is still this token's.
_RELEASE = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# KEYS: the room's claims. ARGV: name. 1 if the name holds a live claim.
_PRESENT = (
    _NOW
    + """
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expires and tonumber(expires) > now then return 1 end
return 0
"""
)

Deliver = Callable[[str, dict[str, Any], str | None, str | None], object]


class RedisRooms:
    """The chat manager's view of rooms that span replicas (see the module docstring)."""

    def __init__(
        self,
        client: RedisClient,
        backplane: Backplane,
        *,
        max_room_members: int,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self._client = client
        self._backplane = backplane
        self.max_room_members = max_room_members
        self._ttl_ms = max(3, math.ceil(lease_seconds * 1000))
        self._renew_ms = self._ttl_ms // 3
        self._claim = client.script(_CLAIM)
        self._take_over = client.script(_TAKE_OVER)
        self._renew = client.script(_RENEW)
        self._release = client.script(_RELEASE)
        self._present = client.script(_PRESENT)
        self._tokens: dict[tuple[str, str], str] = {}  # this replica's members
        # Claims of members closed while Redis was unreachable: given back once it answers.
        self._orphans: dict[tuple[str, str], str] = {}
        self._asks: dict[str, asyncio.Future[bool]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._deliver: Deliver | None = None
        self._on_lease_lost: Callable[[str, str], object] | None = None
        self._renewer: asyncio.Task[None] | None = None

    def _keys(self, room: str) -> list[str]:
        base = f"{self._client.prefix}chat:{{{room}}}"
        return [f"{base}:claims", f"{base}:tokens"]

    def attach(self, deliver: Deliver, on_lost: Callable[[], object]) -> None:
        """Where frames for this replica's members go, and what to do when Redis is lost."""
        self._deliver = deliver
        self._backplane.handle("chat:*", self._received)
        self._backplane.handle(self._control_channel(self._client.replica_name), self._control)
        self._backplane.on_lost(on_lost)
        self._backplane.on_restored(lambda: self._spawn(self._release_orphans()))

    def on_lease_lost(self, callback: Callable[[str, str], object]) -> None:
        """Called with (room, name) when a member's lease was found gone at renewal (it expired
        while Redis was away, and someone may hold the name now): the member must go."""
        self._on_lease_lost = callback

    def start(self) -> None:
        """Renew this replica's leases until `close`."""
        self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def claim(self, room: str, name: str) -> list[str]:
        """Hold `name` in `room` for this replica; returns the names whose leases had ended
        (their `leave` is still to be announced). `NameTaken`, `NameHeldBriefly` or `RoomFull`
        otherwise."""
        token = f"{self._client.replica_name}|{secrets.token_hex(8)}"
        args = [name, token, self._ttl_ms, self.max_room_members]
        keys = self._keys(room)
        reply = await self._client.call("chat.claim", lambda r: self._claim(keys, args))
        verdict, holder = _text(reply[0]), _text(reply[1])
        ended = [_text(expired) for expired in reply[2]]
        if verdict == "full":
            raise RoomFull(room)
        if verdict == "taken":
            if not await self._holder_gone(room, name, holder):
                raise NameTaken(name)
            taken_over = await self._client.call(
                "chat.take_over",
                lambda r: self._take_over(keys, [name, holder, token, self._ttl_ms]),
            )
            if not taken_over:
                raise NameHeldBriefly(name, retry_after_seconds=1)  # it changed hands meanwhile
            log.info("chat_name_taken_over", room=room, reason="holder's replica is gone")
            ended.append(name)
        self._tokens[(room, name)] = token
        return ended

    async def _holder_gone(self, room: str, name: str, holder: str) -> bool:
        """False when a connected member holds the name (the caller answers `NameTaken`);
        True when the holder's replica is gone (the caller takes the name over); raises
        `NameHeldBriefly` when the member left and its name is on its way back."""
        replica = holder.partition("|")[0]
        if replica == self._client.replica_name:
            # Ours, yet the manager has no such member: a release that failed, given back now.
            return True
        live = await self._ask(replica, room, name, holder)
        if live:
            return False
        if live is None:  # no answer: is that replica still connected to Redis at all?
            try:
                if not await self._client.replica_alive(replica):
                    return True
            except StoreUnavailable:
                pass  # cannot tell (CLIENT LIST refused, say): the lease will decide
        raise NameHeldBriefly(name, retry_after_seconds=1)

    @staticmethod
    def _control_channel(replica: str) -> str:
        return f"chatctl:{replica}"

    async def _ask(self, replica: str, room: str, name: str, token: str) -> bool | None:
        """Whether `replica` still has a connected member holding `token`; None without an
        answer within `ASK_SECONDS`."""
        ask_id = secrets.token_hex(8)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._asks[ask_id] = answer
        question = {
            "ask": ask_id,
            "room": room,
            "name": name,
            "token": token,
            "reply_to": self._client.replica_name,
        }
        try:
            await self._backplane.publish(self._control_channel(replica), orjson.dumps(question))
            async with asyncio.timeout(ASK_SECONDS):
                return await answer
        except (TimeoutError, StoreUnavailable):
            return None
        finally:
            self._asks.pop(ask_id, None)

    def _control(self, channel: str, data: bytes) -> None:
        message = orjson.loads(data)
        if "answer" in message:
            waiting = self._asks.get(message["answer"])
            if waiting is not None and not waiting.done():
                waiting.set_result(bool(message["live"]))
            return
        key = (message["room"], message["name"])
        live = self._tokens.get(key) == message["token"]
        if not live and self._orphans.get(key) == message["token"]:
            self._spawn(self._release_orphans())  # someone wants the name: give it back now
        reply = orjson.dumps({"answer": message["ask"], "live": live})
        self._spawn(self._backplane.publish(self._control_channel(message["reply_to"]), reply))

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def quietly() -> None:
            with contextlib.suppress(StoreUnavailable):
                await work

        task = asyncio.get_running_loop().create_task(quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def release(self, room: str, name: str) -> None:
        """Give the name back (only the claim this replica holds)."""
        token = self._tokens.pop((room, name), None)
        if token is not None:
            try:
                await self._give_back(room, name, token)
            except StoreUnavailable:
                self._orphans[(room, name)] = token  # given back when Redis answers again
                raise

    async def _give_back(self, room: str, name: str, token: str) -> None:
        keys = self._keys(room)
        await self._client.call("chat.release", lambda r: self._release(keys, [name, token]))

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
            await asyncio.sleep(self._renew_ms / 1000)
            with contextlib.suppress(StoreUnavailable):  # the next round tries again
                await self._release_orphans()
            rooms: dict[str, list[str]] = {}
            for (room, name), token in list(self._tokens.items()):
                rooms.setdefault(room, []).extend((name, token))
            for room, pairs in rooms.items():
                try:
                    await self._renew_room(room, pairs)
                except StoreUnavailable:
                    continue
                except Exception:
                    log.exception("chat_renew_failed", room=room)

    async def _renew_room(self, room: str, pairs: list[str]) -> None:
        keys, args = self._keys(room), [self._ttl_ms, *pairs]
        expired, lost = await self._client.call("chat.renew", lambda r: self._renew(keys, args))
        for name in (_text(n) for n in expired):
            if (room, name) not in self._tokens:
                # This replica dropped the claim, so it alone announces it: a member whose
                # replica died leaves the room for everyone else.
                log.info("chat_lease_expired", room=room)
                await self.relay(room, _leave(room, name), exclude=None, to=None)
        for name in (_text(n) for n in lost):
            if self._tokens.pop((room, name), None) is not None and self._on_lease_lost:
                self._on_lease_lost(room, name)

    async def _release_orphans(self) -> None:
        for (room, name), token in list(self._orphans.items()):
            if self._orphans.get((room, name)) != token:
                continue  # another task gave it back meanwhile
            await self._give_back(room, name, token)
            self._orphans.pop((room, name), None)
            await self.relay(room, _leave(room, name), exclude=None, to=None)

    def forget_all(self) -> None:
        """Drop this replica's claims (its members are being closed); they are given back
        when Redis answers again."""
        self._orphans.update(self._tokens)
        self._tokens.clear()

    async def close(self) -> None:
        """Stop renewing."""
        for pending in list(self._background):
            pending.cancel()
        task, self._renewer = self._renewer, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _leave(room: str, name: str) -> dict[str, Any]:
    return {"type": "system", "event": "leave", "name": name, "room": room}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
