"""The app factory. Read top to bottom, it is the architecture: settings, logging, the
middleware chain (outermost first), the routers, and the lifespan that owns long-lived objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app import __version__
from app.api.routes import auth, root, users
from app.core.clients import ClientIdentifier
from app.core.config import Settings, get_settings
from app.core.errors import install_error_handlers
from app.core.logging import configure_logging, get_logger
from app.core.security import TokenCodec
from app.middleware.body_limit import BodyLimitMiddleware
from app.middleware.request_context import RequestContextMiddleware
from app.services.container import build_services

log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the services, create the admin, serve; then release everything in reverse."""
    settings: Settings = app.state.settings
    services = build_services(settings, app.state.tokens)
    admin = await services.users.ensure_admin(
        email=settings.admin_email, password=settings.admin_password
    )
    app.state.services = services
    log.info("startup_complete", env=settings.env, version=__version__, admin_id=admin.id)
    try:
        yield
    finally:
        log.info("shutdown_complete")


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

    middleware = [
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
            ],
            expose_headers=[
                "ETag",
                "Location",
                "X-Request-ID",
                "Idempotent-Replayed",
                "Retry-After",
            ],
        ),
        # 3. Request context: request id, access log line, last-resort 500 problem.
        Middleware(
            RequestContextMiddleware,
            show_error_detail=settings.is_development,
            client_address=clients.client_address,
            quiet_paths=("/live", "/ready", "/health", "/health/detailed", "/metrics"),
        ),
        # Innermost: request bodies over the limit get 413 before a handler sees them.
        Middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes),
    ]

    app = FastAPI(
        title="Resilient API",
        version=__version__,
        summary="A resilience-focused reference API: every production pattern, done right.",
        lifespan=lifespan,
        middleware=middleware,
    )
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.client_identifier = clients
    install_error_handlers(app)

    app.include_router(root.router)
    app.include_router(users.router)
    app.include_router(auth.router)
    return app


app = create_app()
