"""`GET /`: the learner's console for browsers, an index of every demo for API clients.

One URL, two representations, chosen by `Accept` (with `Vary: Accept`, so a cache never hands
one to the other). The console is static files in `app/static/console` — vanilla ES modules,
no build step, nothing from another origin — under a policy that runs scripts from this origin
only and no inline script or style at all.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app import __version__
from app.api.deps import API_PREFIX, SettingsDep
from app.api.negotiation import prefers_html
from app.api.routes.docs import OWN_DIRECTORY, html_headers
from app.core.config import Settings

router = APIRouter(tags=["meta"])

CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
# Read once at import: a request never waits on the disk for it.
CONSOLE_PAGE = (OWN_DIRECTORY / "console" / "index.html").read_bytes()

A = API_PREFIX
DEMOS: dict[str, dict[str, str]] = {
    "rate_limit": {
        "try": f"GET {A}/demo/slow?delay=0 (repeat past the quota)",
        "shows": "RateLimit and RateLimit-Policy fields; 429 with Retry-After past the quota",
    },
    "timeout": {
        "try": f"GET {A}/demo/slow?delay=12",
        "shows": "504 once the request timeout passes; the handler is cancelled",
    },
    "circuit_breaker": {
        "try": f"GET {A}/demo/flaky?failure_rate=1 (repeat), then GET {A}/resilience",
        "shows": "the flaky breaker opens (503 circuit-open), turns half-open, then closes",
    },
    "breaker_events": {
        "try": f"GET {A}/events/stream?topic=breaker.*",
        "shows": "every breaker transition as an event",
    },
    "sse": {
        "try": f"GET {A}/sse/stream?interval=1",
        "shows": "numbered ticks; reconnect with Last-Event-ID to continue",
    },
    "chat": {
        "try": f"WebSocket {A}/ws/chat?room=lobby&name=ann",
        "shows": "rooms, broadcast, direct messages, join/leave, close codes",
    },
    "event_bus": {
        "try": f"POST {A}/events and GET {A}/events/stream?topic=demo.*",
        "shows": "publish/subscribe by pattern, history, resume and gap events",
    },
    "slow_subscriber": {
        "try": f'POST {A}/demo/slow-subscriber {{"events": 100, "queue": 10}} (not in production)',
        "shows": "a subscriber that falls behind loses its oldest events, told by a gap",
    },
    "cpu_work": {
        "try": f"POST {A}/scoring/jobs, then GET {A}/scoring/jobs/{{id}}",
        "shows": "CPU work in worker processes; progress events on scoring.*",
    },
    "cpu_on_loop": {
        "try": f'POST {A}/demo/cpu-on-loop {{"samples": 20000000}} (not in production)',
        "shows": "the same work as /cpu-intensive held on the event loop: /live waits too",
    },
    "concurrency": {
        "try": f"GET {A}/async-demo?tasks=50&delay=0.3 and GET {A}/blocking-demo?delay=1",
        "shows": "many waits on one loop; a blocking call kept off the loop",
    },
    "cache": {
        "try": f"GET {A}/users/1 twice, then GET /metrics",
        "shows": "cache_hits_total and cache_misses_total for the users cache",
    },
    "probes": {
        "try": "GET /live, GET /ready?verbose, GET /health/detailed",
        "shows": "what Kubernetes asks, and why each answer is what it is",
    },
    "readiness_drain": {
        "try": f'PUT {A}/admin/readiness {{"ready": false}} (admin, not in production)',
        "shows": "/ready turns 503 while the process keeps serving",
    },
    "metrics": {"try": "GET /metrics", "shows": "Prometheus metrics of every layer"},
}


def api_index(title: str, settings: Settings | None = None) -> dict[str, Any]:
    """The JSON index: where the docs are, the user routes, and every demo (what `settings`
    serve of them: in production, by default, the API alone)."""
    index: dict[str, Any] = {"name": title, "version": __version__}
    if settings is None or settings.serves_console:
        index["console"] = "/ (in a browser)"
    if settings is None or settings.docs_enabled:
        index |= {"docs": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"}
    index["try"] = {
        "register": f"POST {A}/users",
        "login": f"POST {A}/auth/token",
        "me": f"GET {A}/auth/me",
        "users": f"GET {A}/users",
    }
    if settings is None or settings.serves_demos:
        index["demos"] = DEMOS
    return index


@router.get(
    "/",
    summary="The console, or what to try",
    responses={200: {"content": {"text/html": {}, "application/json": {}}}},
)
async def index(request: Request, settings: SettingsDep) -> Response:
    """A browser (`Accept: text/html`) gets the learner's console; any other client gets this
    JSON index: the docs, the user routes, and every demo with what it shows. Where the console
    is off (production, unless `APP_CONSOLE_ENABLED`), everyone gets the index."""
    if settings.serves_console and prefers_html(request.headers.get("accept", "")):
        headers = html_headers(csp=CONSOLE_CSP) | {"Vary": "Accept"}
        return HTMLResponse(CONSOLE_PAGE, headers=headers)
    return JSONResponse(api_index(request.app.title, settings), headers={"Vary": "Accept"})
