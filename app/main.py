"""The app factory. Read top to bottom, it is the architecture: settings, logging, the
middleware chain (outermost first), the routers, and the lifespan that owns long-lived objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

from app import __version__
from app.api.openapi import document_raw_body_models
from app.api.routes import auth, demos, events, metrics, probes, realtime, root, scoring, users
from app.core.clients import ClientIdentifier
from app.core.config import Settings, get_settings
from app.core.errors import install_error_handlers
from app.core.lifecycle import Lifecycle
from app.core.logging import configure_logging, get_logger
from app.core.metrics import release_process_metrics
from app.core.rate_limiter import RateLimiter
from app.core.security import TokenCodec
from app.middleware.body_limit import BodyLimitMiddleware
from app.middleware.metrics import MetricsMiddleware
from app.middleware.rate_limit import RateLimitMiddleware
from app.middleware.request_context import RequestContextMiddleware
from app.middleware.resilience import BreakerConfig, BreakerRegistry, CircuitBreakerMiddleware
from app.middleware.timeout import TimeoutMiddleware
from app.schemas.problem import problem_responses
from app.services.container import build_services
from app.services.snapshots import SnapshotError

log = get_logger(__name__)

PROBE_PATHS = ("/live", "/ready", "/health", "/health/detailed")
METRICS_PATH = "/metrics"
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
# Never rate-limited, timed out or behind a breaker (contract sections 2.5-2.7).
OPERATIONAL_PATHS = (*PROBE_PATHS, METRICS_PATH, *DOCS_PATHS)

# One breaker per route group (router); the flaky demo has its own so it cannot trip the others.
BREAKER_GROUPS = (
    (users.router.prefix, "users"),
    (auth.router.prefix, "auth"),
    (demos.DEMO_PREFIX, "demos"),
    (demos.FLAKY_PATH, "flaky"),
    (scoring.router.prefix, "scoring"),
    (f"{scoring.cpu_router.prefix}/cpu-intensive", "scoring"),
    (events.router.prefix, "events"),
    (f"{realtime.router.prefix}/sse", "realtime"),
    (f"{realtime.router.prefix}/stream", "realtime"),
    (f"{realtime.router.prefix}/async-demo", "demos"),
    (f"{realtime.router.prefix}/blocking-demo", "demos"),
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the services, create the admin, turn ready; on the way out, turn unready first."""
    settings: Settings = app.state.settings
    lifecycle: Lifecycle = app.state.lifecycle
    services = build_services(settings, app.state.tokens, app.state.breakers)
    try:
        await services.start(lifecycle)
    except Exception as exc:
        # Stop whatever did start (worker processes, tasks) before the process exits.
        reason = str(exc) if isinstance(exc, SnapshotError) else f"{type(exc).__name__}: {exc}"
        log.error("startup_failed", reason=reason)
        await services.close()
        raise
    try:
        admin = await services.users.ensure_admin(
            email=settings.admin_email, password=settings.admin_password
        )
        app.state.services = services
        lifecycle.mark_started()
        log.info("startup_complete", env=settings.env, version=__version__, admin_id=admin.id)
        yield
    finally:
        lifecycle.begin_shutdown()
        await services.close()
        release_process_metrics()
        log.info("shutdown_complete")


def _middleware(
    settings: Settings, clients: ClientIdentifier, breakers: BreakerRegistry
) -> list[Middleware]:
    chain = [
        # 1. CORS: answers preflights; origins from settings, credentials never with "*".
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
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
            quiet_paths=(*PROBE_PATHS, METRICS_PATH),
        ),
        # 4. Metrics: count and time every request by route template (what is refused too).
        Middleware(MetricsMiddleware, skip_paths=(METRICS_PATH,)),
    ]
    if settings.rate_limit_requests > 0:
        # 5. Rate limit: a token bucket per client key; 429 with Retry-After past the quota.
        limiter = RateLimiter(settings.rate_limit_requests, settings.rate_limit_window_seconds)
        chain.append(
            Middleware(
                RateLimitMiddleware,
                limiter=limiter,
                client_key=clients.client_key,
                exempt_paths=OPERATIONAL_PATHS,
            )
        )
    chain += [
        # 6. Timeout: cancel a handler that has not started answering in time; 504.
        Middleware(
            TimeoutMiddleware,
            timeout_seconds=settings.request_timeout_seconds,
            exempt_paths=OPERATIONAL_PATHS,
        ),
        # 7. Circuit breaker: per route group; 503 while the group keeps failing.
        Middleware(CircuitBreakerMiddleware, registry=breakers, groups=BREAKER_GROUPS),
        # Innermost: request bodies over the limit get 413 before a handler reads them.
        Middleware(
            BodyLimitMiddleware,
            max_body_bytes=settings.max_body_bytes,
            overrides=((scoring.router.prefix, settings.scoring_max_body_bytes),),
        ),
    ]
    return chain


def create_app(settings: Settings | None = None) -> FastAPI:
    """Assemble the app from `settings` (the environment's when not given)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    tokens = TokenCodec(
        settings.jwt_secret_key, settings.jwt_algorithm, settings.jwt_expire_minutes
    )
    clients = ClientIdentifier(
        trusted_proxies=settings.trusted_proxies, token_subject=tokens.subject_or_none
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

    app = FastAPI(
        title="Resilient API",
        version=__version__,
        summary="A resilience-focused reference API: every production pattern, done right.",
        lifespan=lifespan,
        middleware=_middleware(settings, clients, breakers),
    )
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.client_identifier = clients
    app.state.breakers = breakers
    app.state.lifecycle = Lifecycle()
    install_error_handlers(app)

    # Every API route can also meet the chain's answers: documented once, for all of them.
    chain = problem_responses(422, 429, 500, 503, 504)
    for module in (probes, metrics):
        app.include_router(module.router)
    for module in (root, users, auth, events, realtime, demos, scoring):
        app.include_router(module.router, responses=chain)
    app.include_router(scoring.cpu_router, responses=chain)
    document_raw_body_models(app, scoring.RAW_BODY_MODELS)
    return app


app = create_app()
