"""OpenAPI additions FastAPI cannot infer: bodies that routes read raw, parameters that routes
read by hand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

REF_TEMPLATE = "#/components/schemas/{model}"


def document_raw_body_models(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """Add `models` (and the models they use) to the schema's components.

    Routes that validate their body themselves (in a worker) reference these by `$ref` in
    their `openapi_extra`; this makes the references resolve.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            model_schema = model.model_json_schema(ref_template=REF_TEMPLATE)
            components.update(model_schema.pop("$defs", {}))
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def answered_with(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """`responses` documenting a 200 body of `model` for a route that builds its `Response`
    itself (to set `ETag`, or send bytes already rendered), which `response_model` would not
    be used for."""
    return {200: {"model": model, "description": "Successful Response"}}


def hand_read_parameters(*parameters: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` documenting parameters a route reads by hand (not through `Header` or
    `Query`), so the schema shows them as a declared parameter would."""
    return {"parameters": list(parameters)}


def header_parameter(name: str, description: str) -> dict[str, Any]:
    """An optional header, documented as FastAPI documents `Header("")`."""
    schema = {"type": "string", "title": name, "description": description, "default": ""}
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema,
    }


def operation_id(route: APIRoute) -> str:
    """Stable operation ids, `{tag}-{name}` (`users-create_user`), for generated clients."""
    tag = str(route.tags[0]).replace(" ", "_") if route.tags else "default"
    return f"{tag}-{route.name}"


_TAG_DESCRIPTIONS = {
    "users": (
        "Accounts: registration, reads with ETags, changes with `If-Match`, idempotent creation."
    ),
    "auth": "The OAuth2 password flow, the current user, logging out.",
    "events": (
        "The event bus: publish, read the history, follow it live over SSE (resumable with "
        "`Last-Event-ID`)."
    ),
    "realtime": (
        "WebSocket chat, a server-sent event ticker, NDJSON streaming, and concurrency demos."
    ),
    "scoring": (
        "CPU work in the process pool: numpy/pandas scoring now or as a job, and a Monte "
        "Carlo demo."
    ),
    "resilience demos": (
        "A route failing on purpose behind its own circuit breaker, a slow route for the "
        "timeout, and the live state of the resilience layers."
    ),
    "probes": "For Kubernetes and Prometheus: liveness, readiness, health, metrics.",
    "admin": (
        "Teaching aids for admins, left out in production: drain this replica's readiness to "
        "watch what Kubernetes sees during a rollout."
    ),
    "meta": "What there is to try.",
}
TAGS: list[dict[str, Any]] = [
    {"name": name, "description": text} for name, text in _TAG_DESCRIPTIONS.items()
]

DESCRIPTION = """
Every production pattern in one small FastAPI codebase. Errors are RFC 9457 problem details
(`application/problem+json`); every answer carries `X-Request-ID`; API answers carry the IETF
`RateLimit` and `RateLimit-Policy` fields.

**Streams OpenAPI cannot type.**

- `GET /api/v1/events/stream` and `GET /api/v1/sse/stream` are server-sent events
  (`text/event-stream`): a `retry` field first, then events with `id`, `event` and JSON `data`,
  and comment heartbeats while idle. On the bus stream the `id` is the bus event id; reconnect
  with `Last-Event-ID` to get what was missed, or a `gap` event naming the oldest id still held.
- `GET /api/v1/stream/numbers` is NDJSON (`application/x-ndjson`), one `{"n", "square"}` per line.
- `WS /api/v1/ws/chat?room=NAME&name=NAME` (1-64 of `[A-Za-z0-9_.-]`) takes JSON text frames:
  `{"type":"message","text":...}` (to the room, the sender included),
  `{"type":"direct","to":NAME,"text":...}`, `{"type":"ping"}`. The server sends chat messages
  (`type`, `from`, `room`, `text`, `ts`), `{"type":"system","event":"join"|"leave",...}`,
  `{"type":"pong"}` and `{"type":"error","detail":...}` for a frame it cannot use. Close codes:
  1001 server shutting down, 1003 binary frame, 1008 bad room or name, name taken or over the
  message rate, 1009 frame over the size limit, 1013 try again later (room full, too many
  connections, shutting down). A handshake from a page of another origin is refused (403).
"""
