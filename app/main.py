"""The app factory. Read top to bottom, it is the architecture: the middleware chain (outermost
first), then the routers (`app/api/routers.py` says which are served and the breaker that guards
each). The objects they use are built in `app/container.py`, started and closed by
`app/lifespan.py`. Importing this module does nothing; `create_app` builds an app (uvicorn calls
it as a factory: `uvicorn app.main:create_app --factory`).
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

from app import __version__
from app.api.errors import install_error_handlers
from app.api.openapi import DESCRIPTION, TAGS, document_raw_body_models, operation_id
from app.api.routers import (
    ANY_HOST,
    LIGHT,
    METRICS,
    OPENAPI_PATH,
    OPERATIONAL,
    QUIET,
    STATIC,
    STORE_GROUPS,
    STREAM_ROUTES,
    UNDOCUMENTED_CHAIN,
    breaker_groups,
    mounted_routers,
    rate_limit_key,
)
from app.api.routes import docs, events, scoring
from app.container import Foundation, build_foundation, build_rate_limiter
from app.core.config import Settings, get_settings
from app.core.lifecycle import Lifecycle
from app.core.logging import configure_logging
from app.http.routing import HTTP_METHODS
from app.lifespan import lifespan
from app.memory.rate_limiter import MemoryRateLimiter
from app.middleware.body_limit import BodyLimitMiddleware
from app.middleware.circuit_breaker import CircuitBreakerMiddleware
from app.middleware.head_limit import HeadLimitMiddleware
from app.middleware.metrics import MetricsMiddleware
from app.middleware.rate_limit import RateLimitMiddleware
from app.middleware.request_context import RequestContextMiddleware
from app.middleware.timeout import TimeoutMiddleware
from app.middleware.tracing import TracingMiddleware, trace_context_trust
from app.middleware.trusted_host import TrustedHostMiddleware
from app.schemas.problem import Problem, problem_responses

# FastAPI's native OpenTelemetry hooks asked three global providers on every request whether
# they were configured: off. The app's metrics are Prometheus, its logs structlog, and its
# traces (when on) come from its own tracing layer below, with the app's own provider.
TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
# Documented on every API route: the answers the chain itself can give.
CHAIN_RESPONSES = problem_responses(422, 429, 500, 503, 504)


def _middleware(foundation: Foundation) -> list[Middleware]:
    settings, clients = foundation.settings, foundation.clients
    mounts = mounted_routers(settings)
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
    ]
    if foundation.tracer is not None:
        # 2b. Tracing (only when on): a server span per request, named by its route; the
        #     layers below, the handler and its Redis calls continue it, and logs name it.
        chain.append(
            Middleware(
                TracingMiddleware,
                tracer=foundation.tracer,
                continue_context=trace_context_trust(settings.trace_context_from, clients),
            )
        )
    chain += [
        # 3. Request context: request id, one access-log line, last-resort 500 problem.
        Middleware(
            RequestContextMiddleware,
            show_error_detail=settings.is_development,
            client_address=clients.client_address,
            # Polled paths log their access lines at debug, so polling does not flood the log.
            quiet=QUIET,
            # `Prefer: served-by` gets `X-Served-By`: the replica and process that answered.
            served_by=f"{settings.instance}:{os.getpid()}",
        ),
        # 4. Head limit: 431 for a request line and headers over APP_MAX_HEAD_BYTES, before
        #    any later layer or handler reads a header.
        Middleware(HeadLimitMiddleware, max_bytes=settings.max_head_bytes),
        # 5. Trusted hosts: 400 for a Host this service is not served under (DNS rebinding);
        #    the probes and /metrics answer any Host (Kubernetes and Prometheus use pod IPs).
        Middleware(
            TrustedHostMiddleware,
            allowed_hosts=settings.allowed_hosts,
            exempt=ANY_HOST,
        ),
        # 6. Metrics: count and time every request by route template (what is refused too).
        Middleware(
            MetricsMiddleware,
            skip=METRICS,
            stream_routes=STREAM_ROUTES,
            exemplars=foundation.tracer is not None,
        ),
    ]
    if settings.rate_limit_requests > 0:
        # 7. Rate limit: a token bucket per client key; 429 with Retry-After past the quota.
        #    Cheap reads (the console, static files) have a looser quota of their own.
        limiter = build_rate_limiter(settings, foundation.redis)
        chain += [
            Middleware(
                RateLimitMiddleware,
                limiter=limiter,
                client_key=rate_limit_key(clients, mounts),
                exempt=OPERATIONAL | STATIC,
            ),
            Middleware(
                RateLimitMiddleware,
                limiter=MemoryRateLimiter(settings.light_rate_limit_requests, 60),
                client_key=clients.address_key,
                only=LIGHT,
                policy_name="light",
                advertise=False,  # answers there keep no fields: only a 429 says the policy
            ),
        ]
    chain += [
        # 8. Timeout: cancel a handler that has not started answering in time; 504.
        Middleware(
            TimeoutMiddleware,
            timeout_seconds=settings.request_timeout_seconds,
            exempt=OPERATIONAL,
        ),
        # 9. Circuit breaker: per route group; 503 while the group keeps failing.
        Middleware(
            CircuitBreakerMiddleware,
            registry=foundation.breakers,
            groups=breaker_groups(mounts),
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


def create_app(settings: Settings | None = None, *, lifecycle: Lifecycle | None = None) -> FastAPI:
    """Assemble the app from `settings` (the environment's when not given).

    `lifecycle` lets the server that runs the app see its readiness and start its drain.
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.effective_log_format, trace_ids=settings.traces)
    foundation = build_foundation(settings, lifecycle)
    # Every breaker exists from the start, so `/resilience` and the console list them all.
    mounts = mounted_routers(settings)
    for _, name in breaker_groups(mounts):
        foundation.breakers.get(name)
    app = FastAPI(
        title="Resilient API",
        version=__version__,
        summary="A resilience-focused reference API: every production pattern, done right.",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        generate_unique_id_function=operation_id,
        lifespan=lifespan(foundation),
        middleware=_middleware(foundation),
        # Served by app/api/routes/docs.py from this origin, not from a CDN.
        docs_url=None,
        openapi_url=OPENAPI_PATH if settings.docs_enabled else None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        telemetry=TELEMETRY_OFF,
    )
    install_error_handlers(app)
    for mount in mounts:
        responses = None if mount.router in UNDOCUMENTED_CHAIN else CHAIN_RESPONSES
        app.include_router(mount.router, responses=responses)
    for path, static in docs.static_files():
        app.mount(path, static)
    document_raw_body_models(app, (*scoring.RAW_BODY_MODELS, Problem))
    return app
