"""Realtime and async demos: WebSocket chat, server-sent events, NDJSON streaming, and what
concurrency on one event loop looks like (`/async-demo`, `/blocking-demo`)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, WebSocket
from fastapi.responses import StreamingResponse
from sse_starlette import ServerSentEvent

from app.api.deps import API_PREFIX, ChatDep, LifecycleDep, SettingsDep
from app.api.sse import sse_response
from app.core.errors import ServiceUnavailable
from app.core.lifecycle import Lifecycle
from app.schemas.problem import problem_responses
from app.services.chat import (
    CHAT_MESSAGES,
    MESSAGE_TOO_BIG,
    POLICY_VIOLATION,
    TRY_AGAIN_LATER,
    UNSUPPORTED_DATA,
    ChatManager,
    Member,
    NameTaken,
    now_iso,
)

router = APIRouter(prefix=API_PREFIX, tags=["realtime"])
CHAT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


# --- WebSocket chat ---


async def _handle_frame(chat: ChatManager, member: Member, text: str) -> None:
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        frame = None
    if not isinstance(frame, dict):
        CHAT_MESSAGES.labels(type="invalid").inc()
        await chat.send(member, {"type": "error", "detail": "Frames must be JSON objects."})
        return
    kind = frame.get("type")
    if kind == "ping":
        CHAT_MESSAGES.labels(type="ping").inc()
        await chat.send(member, {"type": "pong", "ts": now_iso()})
        return
    if kind not in ("message", "direct"):
        CHAT_MESSAGES.labels(type="invalid").inc()
        detail = "Missing type." if kind is None else f"Unknown type {str(kind)[:64]!r}."
        await chat.send(
            member, {"type": "error", "detail": f"{detail} Use message, direct or ping."}
        )
        return
    body = frame.get("text")
    if not isinstance(body, str) or not body:
        CHAT_MESSAGES.labels(type="invalid").inc()
        await chat.send(member, {"type": "error", "detail": "text must be a non-empty string."})
        return
    if kind == "message":
        CHAT_MESSAGES.labels(type="message").inc()
        message = {
            "type": "message",
            "from": member.name,
            "room": member.room,
            "text": body,
            "ts": now_iso(),
        }
        await chat.broadcast(member.room, message)
        return
    to = frame.get("to")
    CHAT_MESSAGES.labels(type="direct").inc()
    if not isinstance(to, str) or not await chat.direct(member, to, body):
        await chat.send(
            member, {"type": "error", "detail": f"No member named {str(to)[:64]!r} in this room."}
        )


@router.websocket("/ws/chat")
async def chat_socket(
    websocket: WebSocket, chat: ChatDep, lifecycle: LifecycleDep, settings: SettingsDep
) -> None:
    """Chat in a room: `?room=NAME&name=NAME` (1-64 of `[A-Za-z0-9_.-]`), JSON text frames."""
    await websocket.accept()
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
    except NameTaken:
        await websocket.close(POLICY_VIOLATION, f"the name {name} is taken in this room")
        return
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
            await _handle_frame(chat, member, text)
    except RuntimeError:
        pass  # the socket was closed by the server (shutdown or drop) while we waited
    finally:
        await chat.leave(member)


# --- server-sent events ---


async def _ticks(
    lifecycle: Lifecycle, interval: float, count: int | None
) -> AsyncIterator[ServerSentEvent]:
    n = 0
    while count is None or n < count:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lifecycle.wait_for_shutdown(), timeout=interval)
        if lifecycle.shutting_down:
            return
        n += 1
        data = orjson.dumps({"n": n, "ts": datetime.now(UTC).isoformat()}).decode()
        yield ServerSentEvent(data=data, event="tick", id=str(n))


@router.get(
    "/sse/stream",
    summary="Server-sent events: a tick every interval",
    responses={200: {"content": {"text/event-stream": {}}}, **problem_responses(422, 503)},
)
async def sse_stream(
    lifecycle: LifecycleDep,
    settings: SettingsDep,
    interval: Annotated[float, Query(ge=0.05, le=60, description="Seconds between events.")] = 1.0,
    count: Annotated[
        int | None, Query(ge=1, le=100_000, description="Events, then the end.")
    ] = None,
) -> Any:
    """`tick` events with ids from 1 and JSON data; ends after `count` events, at shutdown, or
    when the client leaves. Heartbeat comments keep idle connections open."""
    refuse_during_shutdown(lifecycle)
    return sse_response(
        _ticks(lifecycle, interval, count), heartbeat_seconds=settings.sse_heartbeat_seconds
    )


def refuse_during_shutdown(lifecycle: Lifecycle) -> None:
    """New streams are refused once shutdown has begun (503, come back elsewhere)."""
    if lifecycle.shutting_down:
        raise ServiceUnavailable(
            "The server is shutting down; reconnect to another instance.",
            headers={"Retry-After": "1"},
        )


# --- streaming and async demos ---


@router.get(
    "/stream/numbers",
    summary="A chunked NDJSON stream",
    responses={200: {"content": {"application/x-ndjson": {}}}, **problem_responses(422)},
)
async def stream_numbers(
    lifecycle: LifecycleDep,
    count: Annotated[int, Query(ge=1, le=100_000)] = 10,
    interval: Annotated[float, Query(ge=0, le=1, description="Seconds between lines.")] = 0.0,
) -> StreamingResponse:
    """One JSON object per line (`{"n", "square"}`), sent as it is produced."""

    async def lines() -> AsyncIterator[bytes]:
        for n in range(1, count + 1):
            if lifecycle.shutting_down:
                return
            yield orjson.dumps({"n": n, "square": n * n}) + b"\n"
            # Even with no interval, yield to the loop so one big stream cannot starve others.
            await asyncio.sleep(interval)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get(
    "/async-demo",
    summary="N concurrent waits take about one wait",
    responses=problem_responses(422),
)
async def async_demo(
    tasks: Annotated[int, Query(ge=1, le=1000)] = 10,
    delay: Annotated[
        float, Query(ge=0, le=5, description="Seconds each simulated I/O waits.")
    ] = 1.0,
) -> dict[str, Any]:
    """Runs `tasks` simulated I/O waits of `delay` seconds concurrently on the event loop."""
    start = time.perf_counter()
    await asyncio.gather(*(asyncio.sleep(delay) for _ in range(tasks)))
    elapsed = time.perf_counter() - start
    return {
        "tasks": tasks,
        "delay": delay,
        "elapsed": round(elapsed, 4),
        "sequential_would_take": round(tasks * delay, 4),
        "speedup": round(tasks * delay / elapsed, 1) if elapsed > 0 else None,
    }


@router.get(
    "/blocking-demo", summary="A blocking call in the thread pool", responses=problem_responses(422)
)
async def blocking_demo(
    delay: Annotated[
        float, Query(ge=0, le=5, description="Seconds the blocking call takes.")
    ] = 1.0,
) -> dict[str, Any]:
    """Runs a blocking sleep of `delay` seconds in the thread pool while counting 10 ms loop ticks:
    about delay / 0.01 ticks means the loop stayed free to serve other requests."""
    ticks = 0
    worst_lag = 0.0

    async def ticker() -> None:
        nonlocal ticks, worst_lag
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            worst_lag = max(worst_lag, loop.time() - before - 0.01)
            ticks += 1

    counting = asyncio.create_task(ticker())
    start = time.perf_counter()
    try:
        await asyncio.to_thread(time.sleep, delay)
    finally:
        counting.cancel()
    elapsed = time.perf_counter() - start
    return {
        "delay": delay,
        "elapsed": round(elapsed, 4),
        "loop_ticks": ticks,
        "expected_ticks": int(delay / 0.01),
        "worst_tick_lag_ms": round(worst_lag * 1000, 2),
        "loop_stayed_responsive": worst_lag < 0.1,
    }
