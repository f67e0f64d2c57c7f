"""Chat rooms over WebSockets: membership, broadcast, direct messages, per-connection limits.

The manager knows connections only as things that can `send_text` and `close`, so it is tested
without a server. A broadcast sends to every member concurrently, each with a timeout: one slow
or dead client is dropped instead of holding up the room.

Rooms live in this process, or span replicas through `SharedRooms` (with Redis,
`app/redis/chat.py`): then names and room sizes are checked there, and every frame goes out to
every replica and comes back here for the members this process holds, in one order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from app.core.clock import utc_now_iso
from app.core.exceptions import NameTaken, RoomFull, StoreUnavailable
from app.core.logging import get_logger
from app.schemas.chat import CLIENT_FRAME, Ping, Say
from app.stores.chat_rooms import SharedRooms

log = get_logger(__name__)

WS_CONNECTIONS = Gauge(
    "websocket_connections", "Open chat WebSocket connections.", multiprocess_mode="livesum"
)
CHAT_MESSAGES = Counter("chat_messages_total", "Chat frames handled, by type.", ["type"])

# WebSocket close codes (RFC 6455 section 7.4.1).
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
TRY_AGAIN_LATER = 1013


class ChatConnection(Protocol):
    """What the manager needs of a WebSocket."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass(eq=False)
class Member:
    """One connection in one room, with its message-rate allowance (a token bucket)."""

    room: str
    name: str
    connection: ChatConnection
    tokens: float
    refilled_at: float
    closed: bool = field(default=False)


class ChatManager:
    """Rooms of members; every way a connection can end goes through `leave`."""

    def __init__(
        self,
        *,
        messages_per_second: int,
        max_room_members: int = 50,
        send_timeout_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedRooms | None = None,
    ) -> None:
        self.rate = float(messages_per_second)
        # A broadcast costs one send per member: the cap bounds what one frame can become.
        self.max_room_members = max_room_members
        self.send_timeout = send_timeout_seconds
        self._clock = clock
        self._rooms: dict[str, dict[str, Member]] = {}
        self._shared = shared
        # Frames from the other replicas, sent to this process's members in arrival order.
        self._inbox: asyncio.Queue[tuple[str, str, str | None, str | None]] = asyncio.Queue(
            maxsize=10_000
        )
        self._courier: asyncio.Task[None] | None = None
        if shared is not None:
            shared.attach(self._arrived, self._shared_lost)
            shared.on_lease_lost(self._lease_lost)

    def start(self) -> None:
        """Start handing frames from the shared rooms to local members (with `SharedRooms`)."""
        if self._shared is not None:
            self._shared.start()
            self._courier = asyncio.get_running_loop().create_task(self._deliver_forever())

    def _arrived(
        self, room: str, payload: dict[str, Any], exclude: str | None, to: str | None
    ) -> None:
        if room not in self._rooms:
            return  # nobody here is in that room
        try:
            self._inbox.put_nowait((room, orjson.dumps(payload).decode(), exclude, to))
        except asyncio.QueueFull:
            log.warning("chat_frame_dropped", room=room)

    async def _deliver_forever(self) -> None:
        while True:
            room, text, exclude, to = await self._inbox.get()
            members = self._rooms.get(room, {})
            if to is not None:
                targets = [members[to]] if to in members else []
            else:
                targets = [m for m in members.values() if m.name != exclude]
            await self._send_all([m for m in targets if not m.closed], text)

    def _shared_lost(self) -> None:
        # Names and frames can no longer be shared: close with "try again later" so clients
        # reconnect (to a replica that can reach Redis) and join again.
        if self._shared is not None:
            self._shared.forget_all()
        asyncio.get_running_loop().create_task(
            self.close_all(TRY_AGAIN_LATER, "chat lost its shared store: reconnect")
        )

    def _lease_lost(self, room: str, name: str) -> None:
        member = self._rooms.get(room, {}).get(name)
        if member is not None:
            asyncio.get_running_loop().create_task(
                self.drop(member, TRY_AGAIN_LATER, "your name's lease lapsed: join again")
            )

    @property
    def connection_count(self) -> int:
        """Members in every room."""
        return sum(len(members) for members in self._rooms.values())

    def stats(self) -> dict[str, int]:
        """Open connections and rooms with members."""
        return {"connections": self.connection_count, "rooms": len(self.rooms())}

    def rooms(self) -> dict[str, int]:
        """Members per room."""
        return {room: len(members) for room, members in self._rooms.items()}

    async def join(self, room: str, name: str, connection: ChatConnection) -> Member:
        """Add a member and tell the others; `NameTaken` if the name is in use in the room,
        `RoomFull` if the room holds `max_room_members` already."""
        members = self._rooms.get(room, {})
        if name in members:
            raise NameTaken(name)
        ended: list[str] = []
        if self._shared is not None:
            ended = await self._shared.claim(room, name)  # NameTaken, RoomFull: across replicas
        elif len(members) >= self.max_room_members:
            raise RoomFull(room)
        member = Member(room, name, connection, tokens=self.rate, refilled_at=self._clock())
        self._rooms.setdefault(room, {})[name] = member
        WS_CONNECTIONS.inc()
        log.info("chat_joined", room=room, name=name)
        for gone in ended:
            # Members whose replica died: the others hear them leave before this join.
            event = {"type": "system", "event": "leave", "name": gone, "room": room}
            await self.broadcast(room, event, exclude=member)
        await self.broadcast(
            room, {"type": "system", "event": "join", "name": name, "room": room}, exclude=member
        )
        return member

    async def leave(self, member: Member) -> None:
        """Remove a member (idempotent) and tell the others."""
        members = self._rooms.get(member.room)
        if members is None or members.get(member.name) is not member:
            return
        del members[member.name]
        if not members:
            del self._rooms[member.room]
        WS_CONNECTIONS.dec()
        log.info("chat_left", room=member.room, name=member.name)
        if self._shared is not None:
            try:
                await self._shared.release(member.room, member.name)
            except StoreUnavailable:  # the claim expires by itself
                log.warning("chat_name_not_released", room=member.room)
                return
        event = {"type": "system", "event": "leave", "name": member.name, "room": member.room}
        await self.broadcast(member.room, event)

    def allow(self, member: Member) -> bool:
        """Spend one message from the member's allowance; False when it is used up."""
        now = self._clock()
        member.tokens = min(self.rate, member.tokens + (now - member.refilled_at) * self.rate)
        member.refilled_at = now
        if member.tokens < 1:
            return False
        member.tokens -= 1
        return True

    async def _send(self, member: Member, text: str) -> bool:
        try:
            async with asyncio.timeout(self.send_timeout):
                await member.connection.send_text(text)
        except Exception:
            return False
        return True

    async def broadcast(
        self, room: str, payload: dict[str, Any], *, exclude: Member | None = None
    ) -> int:
        """Send to every member of `room` at once; drop members that fail or are too slow.

        With shared rooms the frame goes to every replica (this one included) and the count
        returned is 0: members are counted where they are."""
        if self._shared is not None:
            excluded = exclude.name if exclude is not None else None
            await self._shared.relay(room, payload, exclude=excluded, to=None)
            return 0
        targets = [
            m for m in self._rooms.get(room, {}).values() if m is not exclude and not m.closed
        ]
        return await self._send_all(targets, orjson.dumps(payload).decode())

    async def _send_all(self, targets: list[Member], text: str) -> int:
        if not targets:
            return 0
        results = await asyncio.gather(*(self._send(m, text) for m in targets))
        for member, ok in zip(targets, results, strict=True):
            if not ok:
                await self.drop(member, POLICY_VIOLATION, "not reading: dropped")
        return sum(results)

    async def direct(self, sender: Member, to: str, text: str) -> bool:
        """Send a direct message to `to` in the sender's room; False if nobody has that name."""
        payload = {
            "type": "direct",
            "from": sender.name,
            "to": to,
            "room": sender.room,
            "text": text,
            "ts": utc_now_iso(),
        }
        if self._shared is not None:
            if not await self._shared.present(sender.room, to):
                return False
            await self._shared.relay(sender.room, payload, exclude=None, to=to)
            return True
        target = self._rooms.get(sender.room, {}).get(to)
        if target is None:
            return False
        if not await self._send(target, orjson.dumps(payload).decode()):
            await self.drop(target, POLICY_VIOLATION, "not reading: dropped")
        return True

    async def handle(self, member: Member, text: str) -> None:
        """Act on one text frame from `member` (`app/schemas/chat.py` says what it may be);
        a frame that is none of them gets an `error` frame, and the connection stays."""
        try:
            frame = CLIENT_FRAME.validate_json(text)
        except ValidationError as exc:
            CHAT_MESSAGES.labels(type="invalid").inc()
            await self.send(member, {"type": "error", "detail": _frame_error(exc)})
            return
        CHAT_MESSAGES.labels(type=frame.type).inc()
        if isinstance(frame, Ping):
            await self.send(member, {"type": "pong", "ts": utc_now_iso()})
        elif isinstance(frame, Say):
            message = {
                "type": "message",
                "from": member.name,
                "room": member.room,
                "text": frame.text,
                "ts": utc_now_iso(),
            }
            await self.broadcast(member.room, message)
        elif not await self.direct(member, frame.to, frame.text):
            await self.send(member, _no_member(frame.to))

    async def send(self, member: Member, payload: dict[str, Any]) -> None:
        """Send to one member (pong, error frames)."""
        if not await self._send(member, orjson.dumps(payload).decode()):
            await self.drop(member, POLICY_VIOLATION, "not reading: dropped")

    async def drop(self, member: Member, code: int, reason: str) -> None:
        """Close a member's connection with `code` and remove it."""
        if not member.closed:
            member.closed = True
            try:
                async with asyncio.timeout(self.send_timeout):
                    await member.connection.close(code, reason)
            except Exception:  # noqa: S110 - the peer is gone already: nothing to tell it
                pass
        await self.leave(member)

    async def close_all(self, code: int = GOING_AWAY, reason: str = "server shutting down") -> None:
        """Close every connection (shutdown: 1001 before the server's own 1012)."""
        members = [m for room in self._rooms.values() for m in room.values()]
        # Everyone leaves at once: no "leave" notices to people who are being closed too.
        self._rooms.clear()
        if self._shared is not None:
            for member in members:
                with contextlib.suppress(Exception):  # unreleased claims expire by themselves
                    await self._shared.release(member.room, member.name)
        WS_CONNECTIONS.dec(len(members))
        for member in members:
            member.closed = True
        await asyncio.gather(
            *(self._close_quietly(m, code, reason) for m in members), return_exceptions=True
        )
        if members:
            log.info("chat_closed_all", connections=len(members), code=code)

    async def close(self) -> None:
        """Close every connection and stop the courier and the shared rooms (shutdown)."""
        await self.close_all()
        task, self._courier = self._courier, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._shared is not None:
            await self._shared.close()

    async def _close_quietly(self, member: Member, code: int, reason: str) -> None:
        async with asyncio.timeout(self.send_timeout):
            await member.connection.close(code, reason)


def _no_member(name: object) -> dict[str, Any]:
    return {"type": "error", "detail": f"No member named {str(name)[:64]!r} in this room."}


def _frame_error(exc: ValidationError) -> str:
    """What an unusable frame is told, in the words a person would use."""
    errors = exc.errors()
    first = errors[0]
    if first["type"] in ("json_invalid", "dict_type", "model_attributes_type"):
        return "Frames must be JSON objects."
    if first["type"] == "union_tag_not_found":
        return "Missing type. Use message, direct or ping."
    if first["type"] == "union_tag_invalid":
        tag = str(first.get("ctx", {}).get("tag", ""))
        return f"Unknown type {tag[:64]!r}. Use message, direct or ping."
    if any(error["loc"][-1:] == ("text",) for error in errors):
        return "text must be a non-empty string."
    wrong_to = next(error for error in errors if error["loc"][-1:] == ("to",))
    given = wrong_to["input"]
    return str(_no_member(given.get("to") if isinstance(given, dict) else given)["detail"])
