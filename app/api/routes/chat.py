"""`/api/v1/ws/chat`: WebSocket chat rooms with JSON text frames."""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, WebSocket

from app.api.deps import API_PREFIX, ChatDep, LifecycleDep, SettingsDep, WsAdmission
from app.core.config import Settings
from app.core.exceptions import NameHeldBriefly, NameTaken, RoomFull, StoreUnavailable
from app.core.lifecycle import Lifecycle
from app.services.chat import (
    GOING_AWAY,
    MESSAGE_TOO_BIG,
    POLICY_VIOLATION,
    TRY_AGAIN_LATER,
    UNSUPPORTED_DATA,
    ChatManager,
    Member,
)

router = APIRouter(prefix=API_PREFIX, tags=["realtime"])
CHAT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def origin_allowed(websocket: WebSocket, allowed_origins: list[str]) -> bool:
    """Whether the handshake's `Origin` may open a socket: none (not a browser), this server's
    own origin, or one of the CORS origins. A browser sends cookies and credentials with a
    WebSocket handshake from any page, so another site's page must be refused (cross-site
    WebSocket hijacking)."""
    origin = websocket.headers.get("origin")
    if origin is None or "*" in allowed_origins or origin in allowed_origins:
        return True
    host = websocket.headers.get("host", "")
    scheme = "https" if websocket.url.scheme == "wss" else "http"
    return origin == f"{scheme}://{host}"


@router.websocket("/ws/chat")
async def chat_socket(
    websocket: WebSocket,
    chat: ChatDep,
    lifecycle: LifecycleDep,
    settings: SettingsDep,
    admission: WsAdmission,
) -> None:
    """Chat in a room: `?room=NAME&name=NAME` (1-64 of `[A-Za-z0-9_.-]`), JSON text frames."""
    if not origin_allowed(websocket, settings.cors_origins):
        # Refused before accepting: the handshake fails (403) and no frame is ever exchanged.
        await websocket.close(POLICY_VIOLATION)
        return
    lease = admission.quota.lease(admission.client)
    await websocket.accept()
    if lease is None:
        await websocket.close(
            TRY_AGAIN_LATER,
            f"at most {admission.quota.per_client} chat connections per client",
        )
        return
    try:
        await _chat(websocket, chat, lifecycle, settings)
    finally:
        lease.release()


async def _chat(
    websocket: WebSocket, chat: ChatManager, lifecycle: Lifecycle, settings: Settings
) -> None:
    if lifecycle.shutting_down:
        await websocket.close(TRY_AGAIN_LATER, "server shutting down")
        return
    room = websocket.query_params.get("room", "")
    name = websocket.query_params.get("name", "")
    if not CHAT_NAME.fullmatch(room) or not CHAT_NAME.fullmatch(name):
        await websocket.close(POLICY_VIOLATION, "room and name must be 1-64 of [A-Za-z0-9_.-]")
        return
    try:
        member = await chat.join(room, name, websocket)
    except NameHeldBriefly as held:
        # Its holder is gone (a replica lost Redis for a moment): a retry gets the name.
        await websocket.close(
            TRY_AGAIN_LATER,
            f"the name {name} is held by a connection that ended; retry in "
            f"{held.retry_after_seconds} s",
        )
        return
    except NameTaken:
        await websocket.close(POLICY_VIOLATION, f"the name {name} is taken in this room")
        return
    except RoomFull:
        await websocket.close(
            TRY_AGAIN_LATER, f"the room is full ({chat.max_room_members} members)"
        )
        return
    except StoreUnavailable:
        await websocket.close(TRY_AGAIN_LATER, "the chat is unavailable: reconnect shortly")
        return
    try:
        async with asyncio.timeout(settings.stream_max_seconds):
            await _converse(websocket, chat, member, settings)
    except TimeoutError:
        # A connection's lifetime is bounded, like every stream's: the client reconnects.
        await chat.drop(member, GOING_AWAY, "connection lifetime reached; reconnect")
    finally:
        await chat.leave(member)


async def _converse(
    websocket: WebSocket, chat: ChatManager, member: Member, settings: Settings
) -> None:
    try:
        while not member.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("text") is None:
                await chat.drop(member, UNSUPPORTED_DATA, "binary frames are not supported")
                break
            text = message["text"]
            if len(text.encode()) > settings.ws_max_message_bytes:
                await chat.drop(
                    member,
                    MESSAGE_TOO_BIG,
                    f"frames are limited to {settings.ws_max_message_bytes} bytes",
                )
                break
            if not chat.allow(member):
                await chat.drop(
                    member,
                    POLICY_VIOLATION,
                    f"more than {settings.ws_messages_per_second} messages per second",
                )
                break
            try:
                await chat.handle(member, text)
            except StoreUnavailable:
                await chat.drop(member, TRY_AGAIN_LATER, "the chat lost its shared store")
                break
    except RuntimeError:
        pass  # the socket was closed by the server (shutdown or drop) while we waited
