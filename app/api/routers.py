"""Every router the app can serve: when it is served, the breaker that guards it, and the path
sets the middleware chain treats apart, all derived from the routers themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.types import Scope

from app.api.deps import uses_bearer_token
from app.api.routes import (
    admin,
    auth,
    chat,
    concurrency,
    demos,
    docs,
    events,
    lab,
    metrics,
    probes,
    root,
    scoring,
    streaming,
    ticker,
    users,
)
from app.core.config import Settings
from app.http.clients import ClientIdentifier
from app.http.paths import Paths


def _always(_: Settings) -> bool:
    return True


def _with_demos(settings: Settings) -> bool:
    return settings.serves_demos


def _on_a_laptop(settings: Settings) -> bool:
    # The readiness drain and fault injection are teaching aids for a laptop.
    return settings.env != "production" and settings.on_loopback


def _with_lab(settings: Settings) -> bool:
    # Routes that provoke a fault on purpose are for learners, not for users.
    return settings.env != "production" and settings.serves_demos


def _with_docs(settings: Settings) -> bool:
    return settings.docs_enabled


@dataclass(frozen=True, slots=True)
class Mount:
    """A router, the route-group breaker that guards it (None: behind no breaker; WebSockets
    and operational routes), and whether `settings` serve it."""

    router: APIRouter
    breaker: str | None
    served: Callable[[Settings], bool] = _always


# FastAPI tries routers in this order on every request, so the busiest API comes first; no
# two routers share a path, so the order changes nothing else. The flaky demo is behind no
# route group: its breaker is its upstream's (the `flaky` dependency), so opening it on
# purpose cannot refuse the other demos.
ROUTERS: tuple[Mount, ...] = (
    Mount(users.router, "users"),
    Mount(auth.router, "auth"),
    Mount(events.router, "events"),
    Mount(chat.router, None),  # WebSockets: the breaker layer sees HTTP only
    Mount(ticker.router, "realtime"),
    Mount(streaming.router, "realtime"),
    Mount(concurrency.router, "demos", _with_demos),
    Mount(demos.router, "demos", _with_demos),
    Mount(demos.flaky_router, None, _with_demos),
    Mount(demos.resilience_router, None),
    Mount(lab.router, "demos", _with_lab),
    Mount(scoring.router, "scoring"),
    Mount(scoring.cpu_router, "scoring", _with_demos),
    Mount(admin.router, None, _on_a_laptop),
    Mount(probes.router, None),
    Mount(metrics.router, None),
    Mount(docs.router, None, _with_docs),
    Mount(root.router, None),
)
# The route groups whose writes go to the store (with Redis, they need it).
STORE_GROUPS = ("users", "auth", "events")
# Not documented with the chain's answers (429, 503, 504...): the chain never gives them.
UNDOCUMENTED_CHAIN = (probes.router, metrics.router, docs.router)


def _paths(*routers: APIRouter) -> frozenset[str]:
    return frozenset(getattr(route, "path", "") for router in routers for route in router.routes)


OPENAPI_PATH = "/openapi.json"
PROBES = Paths(_paths(probes.router))
METRICS = Paths(_paths(metrics.router))
DOCS = Paths({*_paths(docs.router), OPENAPI_PATH})
# The console's page and the resilience state it polls every second, like a dashboard.
CONSOLE = Paths(_paths(root.router, demos.resilience_router))
# Static files (the console's, Swagger UI's, ReDoc's) are not API work.
STATIC = Paths(prefixes=("/static/",))
# Never rate-limited, timed out or behind a breaker.
OPERATIONAL = PROBES | METRICS | DOCS | CONSOLE
# Cheap reads outside the API's quota, under a looser one of their own (per address, per
# process: it guards this process's time), so one address cannot flood them at others'
# expense: the console and what it polls, /metrics (61 KB rendered per scrape), the schema,
# the detailed health, static files. The probes and the docs pages are never limited.
LIGHT = CONSOLE | METRICS | STATIC | Paths({"/health/detailed", OPENAPI_PATH})
# Answer any Host: Kubernetes and Prometheus reach pods by IP.
ANY_HOST = PROBES | METRICS
# Polled: their access lines are logged at debug, so polling does not flood the log.
QUIET = PROBES | METRICS | Paths(_paths(demos.resilience_router))
# Counted but not timed: a stream's lifetime is not a request latency.
STREAM_TYPES = frozenset({"text/event-stream", "application/x-ndjson"})


def _streams(mounts: Iterable[Mount]) -> frozenset[str]:
    """The templates of routes whose 200 is a stream (as their OpenAPI answers declare)."""
    return frozenset(
        route.path
        for mount in mounts
        for route in mount.router.routes
        if isinstance(route, APIRoute)
        and STREAM_TYPES & set(route.responses.get(200, {}).get("content", {}))
    )


STREAM_ROUTES = _streams(ROUTERS)


def mounted_routers(settings: Settings) -> list[Mount]:
    """The routers this app serves under `settings`: production exposes the API, not the
    learner's tools, unless told to."""
    return [mount for mount in ROUTERS if mount.served(settings)]


def breaker_groups(mounts: Iterable[Mount]) -> list[tuple[str, str]]:
    """(path prefix, breaker) pairs for the breaker layer, from each route's static prefix."""
    groups: dict[str, str] = {}
    for mount in mounts:
        if mount.breaker is None:
            continue
        for route in mount.router.routes:
            template = getattr(route, "path", "")
            prefix = template.split("{", 1)[0].rstrip("/")
            if prefix:
                groups.setdefault(prefix, mount.breaker)
    return sorted(groups.items())


def rate_limit_key(clients: ClientIdentifier, mounts: Sequence[Mount]) -> Callable[[Scope], str]:
    """The rate limiter's client key: the token's subject on routes that need a token, the
    client address everywhere else (a token must not buy a fresh quota on open routes)."""
    token_routes = [
        (route.path_regex, frozenset(route.methods or ()))
        for mount in mounts
        for route in mount.router.routes
        if isinstance(route, APIRoute) and uses_bearer_token(route.dependant)
    ]

    def key(scope: Scope) -> str:
        method, path = scope["method"], scope["path"]
        for pattern, methods in token_routes:
            if method in methods and pattern.match(path):
                return clients.client_key(scope)
        return clients.address_key(scope)

    return key
