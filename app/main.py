"""The app factory. Read top to bottom, it is the architecture: the middleware chain (outermost
first), the routers with the breaker that guards each, and the lifespan that owns long-lived
objects. Importing this module does nothing; `create_app` builds an app (uvicorn calls it as a
factory: `uvicorn app.main:create_app --factory`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Scope

from app import __version__
from app.api.deps import uses_bearer_token
from app.api.errors import install_error_handlers
from app.api.openapi import DESCRIPTION, TAGS, document_raw_body_models, operation_id
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
from app.container import (
    AppState,
    Foundation,
    build_rate_limiter,
    build_services,
    hashing_dependency,
    memory_store,
    process_pool_dependency,
    redis_client,
)
from app.core.breaker import BreakerConfig, BreakerRegistry
from app.core.config import DEV_ADMIN_PASSWORD, Settings, get_settings
from app.core.exceptions import StartupRefused
from app.core.lifecycle import Lifecycle
from app.core.logging import configure_logging, get_logger
from app.core.metrics import release_process_metrics
from app.core.security import TokenCodec
from app.http.clients import ClientIdentifier
from app.http.routing import HTTP_METHODS
from app.memory.rate_limiter import MemoryRateLimiter
from app.middleware.body_limit import BodyLimitMiddleware
from app.middleware.circuit_breaker import CircuitBreakerMiddleware
from app.middleware.head_limit import HeadLimitMiddleware
from app.middleware.metrics import MetricsMiddleware
from app.middleware.rate_limit import RateLimitMiddleware
from app.middleware.request_context import RequestContextMiddleware
from app.middleware.timeout import TimeoutMiddleware
from app.middleware.trusted_host import TrustedHostMiddleware
from app.schemas.problem import Problem, problem_responses

log = get_logger(__name__)

PROBE_PATHS = ("/live", "/ready", "/health", "/health/detailed")
METRICS_PATH = "/metrics"
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
# The resilience layers' live state: the console polls it every second, like a dashboard.
RESILIENCE_PATH = "/api/v1/resilience"
# The console's page and the state it polls: cheap reads, answered from memory.
CONSOLE_PATHS = ("/", RESILIENCE_PATH)
# Never rate-limited, timed out or behind a breaker.
OPERATIONAL_PATHS = (*PROBE_PATHS, METRICS_PATH, *DOCS_PATHS, *CONSOLE_PATHS)
# Static files (the console, Swagger UI, ReDoc) are not API work: not under the API's quota.
STATIC_PREFIX = "/static/"
# Cheap reads outside the API's quota, under a looser one of their own (per address, per
# process: it guards this process's time), so one address cannot flood them at others'
# expense: the console's page and what it polls, /metrics (61 KB rendered per scrape), the
# schema, the detailed health, static files. The probes and the docs pages are never limited.
LIGHT_PATHS = ("/", RESILIENCE_PATH, "/health/detailed", METRICS_PATH, "/openapi.json")
# Counted but not timed: a stream's lifetime is not a request latency.
STREAM_ROUTES = ("/api/v1/events/stream", "/api/v1/sse/stream", "/api/v1/stream/numbers")

# Every router, and the breaker that guards it (None: behind no breaker). The flaky demo has a
# breaker of its own so that opening it on purpose cannot refuse the other demos. FastAPI tries
# routers in this order on every request, so the busiest API comes first (users GET: 148 -> 131
# us per request in process); no two routers share a path, so the order changes nothing else.
ROUTERS: tuple[tuple[APIRouter, str | None], ...] = (
    (users.router, "users"),
    (auth.router, "auth"),
    (events.router, "events"),
    (chat.router, None),  # WebSockets: the breaker layer sees HTTP only
    (ticker.router, "realtime"),
    (streaming.router, "realtime"),
    (concurrency.router, "demos"),
    (demos.router, "demos"),
    (demos.flaky_router, "flaky"),
    (demos.resilience_router, None),
    (lab.router, "demos"),  # left out in production (see create_app)
    (scoring.router, "scoring"),
    (scoring.cpu_router, "scoring"),
    (admin.router, None),  # left out in production (see create_app)
    (probes.router, None),
    (metrics.router, None),
    (docs.router, None),
    (root.router, None),
)
# The route groups whose writes go to the store (with Redis, they need it).
STORE_GROUPS = ("users", "auth", "events")
TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
# Documented on every API route: the answers the chain itself can give.
CHAIN_RESPONSES = problem_responses(422, 429, 500, 503, 504)
UNDOCUMENTED_CHAIN = (probes.router, metrics.router, docs.router)


# Served only when the settings serve demos (`APP_DEMOS_ENABLED`; off in production by default).
DEMO_ROUTERS = (concurrency.router, demos.router, demos.flaky_router, scoring.cpu_router)


def mounted_routers(settings: Settings) -> list[tuple[APIRouter, str | None]]:
    """The routers this app serves under `settings` (and their breaker groups): production
    exposes the API, not the learner's tools, unless told to."""
    mounted = []
    for router, group in ROUTERS:
        if router is admin.router and (settings.env == "production" or not settings.on_loopback):
            # The readiness drain and fault injection are teaching aids for a laptop.
            continue
        if router is lab.router and (settings.env == "production" or not settings.serves_demos):
            continue  # routes that provoke a fault on purpose are for learners, not for users
        if router in DEMO_ROUTERS and not settings.serves_demos:
            continue
        if router is docs.router and not settings.docs_enabled:
            continue
        mounted.append((router, group))
    return mounted


def breaker_groups(
    routers: Sequence[tuple[APIRouter, str | None]],
) -> list[tuple[str, str]]:
    """(path prefix, breaker) pairs for the breaker layer, from each route's static prefix."""
    groups: dict[str, str] = {}
    for router, breaker in routers:
        if breaker is None:
            continue
        for route in router.routes:
            template = getattr(route, "path", "")
            prefix = template.split("{", 1)[0].rstrip("/")
            if prefix:
                groups.setdefault(prefix, breaker)
    return sorted(groups.items())


def rate_limit_key(
    clients: ClientIdentifier, routers: Sequence[tuple[APIRouter, str | None]]
) -> Callable[[Scope], str]:
    """The rate limiter's client key: the token's subject on routes that need a token, the
    client address everywhere else (a token must not buy a fresh quota on open routes)."""
    token_routes = [
        (route.path_regex, frozenset(route.methods or ()))
        for router, _ in routers
        for route in router.routes
        if isinstance(route, APIRoute) and uses_bearer_token(route.dependant)
    ]

    def key(scope: Scope) -> str:
        method, path = scope["method"], scope["path"]
        for pattern, methods in token_routes:
            if method in methods and pattern.match(path):
                return clients.client_key(scope)
        return clients.address_key(scope)

    return key


def _middleware(foundation: Foundation) -> list[Middleware]:
    settings, clients = foundation.settings, foundation.clients
    chain = [
        # 1. CORS: answers preflights; origins from settings, credentials never with "*".
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=list(HTTP_METHODS),
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "Idempotency-Key",
                "X-Request-ID",
                "Last-Event-ID",
            ],
            expose_headers=[
                "ETag",
                "Location",
                "X-Request-ID",
                "Idempotent-Replayed",
                "Retry-After",
                "RateLimit",
                "RateLimit-Policy",
            ],
        ),
        # 2. GZip: bodies over 1 KB for clients that accept it; never text/event-stream.
        Middleware(GZipMiddleware, minimum_size=1000),
        # 3. Request context: request id, one access-log line, last-resort 500 problem.
        Middleware(
            RequestContextMiddleware,
            show_error_detail=settings.is_development,
            client_address=clients.client_address,
            # Polled paths log their access lines at debug, so polling does not flood the log.
            quiet_paths=(*PROBE_PATHS, METRICS_PATH, RESILIENCE_PATH),
        ),
        # 4. Head limit: 431 for a request line and headers over APP_MAX_HEAD_BYTES, before
        #    any later layer or handler reads a header.
        Middleware(HeadLimitMiddleware, max_bytes=settings.max_head_bytes),
        # 5. Trusted hosts: 400 for a Host this service is not served under (DNS rebinding);
        #    the probes and /metrics answer any Host (Kubernetes and Prometheus use pod IPs).
        Middleware(
            TrustedHostMiddleware,
            allowed_hosts=settings.allowed_hosts,
            exempt_paths=(*PROBE_PATHS, METRICS_PATH),
        ),
        # 6. Metrics: count and time every request by route template (what is refused too).
        Middleware(MetricsMiddleware, skip_paths=(METRICS_PATH,), stream_routes=STREAM_ROUTES),
    ]
    if settings.rate_limit_requests > 0:
        # 7. Rate limit: a token bucket per client key; 429 with Retry-After past the quota.
        #    Cheap reads (the console, static files) have a looser quota of their own.
        limiter = build_rate_limiter(settings, foundation.redis)
        chain += [
            Middleware(
                RateLimitMiddleware,
                limiter=limiter,
                client_key=rate_limit_key(clients, ROUTERS),
                exempt_paths=OPERATIONAL_PATHS,
                exempt_prefixes=(STATIC_PREFIX,),
            ),
            Middleware(
                RateLimitMiddleware,
                limiter=MemoryRateLimiter(settings.light_rate_limit_requests, 60),
                client_key=clients.address_key,
                only_paths=LIGHT_PATHS,
                only_prefixes=(STATIC_PREFIX,),
                policy_name="light",
                advertise=False,  # answers there keep no fields: only a 429 says the policy
            ),
        ]
    chain += [
        # 8. Timeout: cancel a handler that has not started answering in time; 504.
        Middleware(
            TimeoutMiddleware,
            timeout_seconds=settings.request_timeout_seconds,
            exempt_paths=OPERATIONAL_PATHS,
        ),
        # 9. Circuit breaker: per route group; 503 while the group keeps failing.
        Middleware(
            CircuitBreakerMiddleware,
            registry=foundation.breakers,
            groups=breaker_groups(mounted_routers(settings)),
            # Writes to the store are refused here, before their body is read, while its
            # dependency breaker is open; reads go on to their stale-if-error fallback.
            writes_need=dict.fromkeys(
                STORE_GROUPS,
                tuple(d for d in (foundation.store_dependency,) if d is not None),
            ),
        ),
        # 10. Body limit (innermost): bodies over the limit get 413 before a handler reads them.
        Middleware(
            BodyLimitMiddleware,
            max_body_bytes=settings.max_body_bytes,
            overrides=(
                (scoring.router.prefix, settings.scoring_max_body_bytes),
                # An event's body is its data plus a topic: the data bound and a little more.
                (events.router.prefix, settings.event_max_bytes + 512),
            ),
        ),
    ]
    return chain


def _reason(exc: BaseException) -> str:
    # Our own refusals explain themselves; anything else is named by its type as well.
    if isinstance(exc, StartupRefused):  # SnapshotError is one
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def several_workers() -> str | None:
    """How this process is one of several serving workers, or None: a process started by a
    supervisor's `multiprocessing` (`uvicorn --workers N`), or `WEB_CONCURRENCY` above 1 (what
    uvicorn and gunicorn read for their worker count)."""
    concurrency = os.environ.get("WEB_CONCURRENCY", "").strip()
    if concurrency.isdigit() and int(concurrency) > 1:
        return f"WEB_CONCURRENCY={concurrency}"
    if multiprocessing.parent_process() is not None:
        return "a worker process started by a supervisor (uvicorn --workers, say)"
    return None


def _lifespan(
    foundation: Foundation,
) -> Callable[[FastAPI], AbstractAsyncContextManager[AppState]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[AppState]:
        """Build and start the services, create the admin, turn ready; on the way out, turn
        unready first, then close everything in reverse order."""
        settings = foundation.settings
        if settings.store == "memory" and (workers := several_workers()) is not None:
            reason = (
                f"APP_STORE=memory keeps the data in this process, and this is {workers}: "
                "each worker would serve a dataset of its own. Run one worker (python -m app), "
                "or share the data with APP_STORE=redis"
            )
            log.error("startup_failed", reason=reason)
            raise StartupRefused(reason)
        services = build_services(foundation)
        try:
            await services.start()
        except Exception as exc:
            # Stop whatever did start (worker processes, tasks) before the process exits.
            log.error("startup_failed", reason=_reason(exc))
            await services.close()
            raise
        try:
            admin = await services.users.ensure_admin(
                email=settings.admin_email,
                password=settings.admin_password,
                reset_password=settings.admin_reset_password,
                # Production must not run with an admin anyone can look up in this repository.
                forbidden_password=DEV_ADMIN_PASSWORD if settings.env == "production" else None,
            )
            foundation.lifecycle.mark_started()
            log.info(
                "startup_complete",
                env=settings.env,
                version=__version__,
                admin_id=admin.id,
                # Where a learner finds the console (and the API), said once at start.
                console=f"http://{settings.host}:{settings.port}/",
            )
            yield {"services": services}
        except StartupRefused as exc:
            log.error("startup_failed", reason=_reason(exc))
            raise
        finally:
            foundation.lifecycle.begin_shutdown()
            await services.close()
            release_process_metrics()
            log.info("shutdown_complete")

    return lifespan


def create_app(settings: Settings | None = None, *, lifecycle: Lifecycle | None = None) -> FastAPI:
    """Assemble the app from `settings` (the environment's when not given).

    `lifecycle` lets the server that runs the app see its readiness and start its drain.
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    tokens = TokenCodec(
        settings.jwt_secret_key,
        settings.jwt_algorithm,
        settings.jwt_expire_minutes,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    breakers = BreakerRegistry(
        BreakerConfig(
            window_size=settings.breaker_window_size,
            min_calls=settings.breaker_min_calls,
            failure_rate=settings.breaker_failure_rate,
            open_seconds=settings.breaker_open_seconds,
            half_open_calls=settings.breaker_half_open_calls,
        )
    )
    foundation = Foundation(
        settings=settings,
        lifecycle=lifecycle or Lifecycle(),
        tokens=tokens,
        clients=ClientIdentifier(
            trusted_proxies=settings.trusted_proxies, token_subject=tokens.subject_or_none
        ),
        breakers=breakers,
        redis=redis_client(settings, breakers),
        store=memory_store(settings, breakers),
        hashing=hashing_dependency(settings, breakers),
        process_pool=process_pool_dependency(settings, breakers),
    )
    # Every breaker exists from the start, so `/resilience` and the console list them all.
    routers = mounted_routers(settings)
    for _, name in breaker_groups(routers):
        foundation.breakers.get(name)
    app = FastAPI(
        title="Resilient API",
        version=__version__,
        summary="A resilience-focused reference API: every production pattern, done right.",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        generate_unique_id_function=operation_id,
        lifespan=_lifespan(foundation),
        middleware=_middleware(foundation),
        # Served by app/api/routes/docs.py from this origin, not from a CDN.
        docs_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # FastAPI's native OpenTelemetry hooks asked three global providers on every request
        # whether they were configured. The app's metrics are Prometheus and its logs are
        # structlog, and it configures no OpenTelemetry provider, so the hooks are off.
        telemetry=TELEMETRY_OFF,
    )
    install_error_handlers(app)
    for router, _ in routers:
        responses = None if router in UNDOCUMENTED_CHAIN else CHAIN_RESPONSES
        app.include_router(router, responses=responses)
    for path, static in docs.static_files():
        app.mount(path, static)
    document_raw_body_models(app, (*scoring.RAW_BODY_MODELS, Problem))
    return app
