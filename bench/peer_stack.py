"""A typical peer stack, for comparison: FastAPI with the middleware the popular templates and
"best practices" repositories assemble from libraries: CORS, GZip, asgi-correlation-id,
slowapi, prometheus-fastapi-instrumentator, a `BaseHTTPMiddleware` timeout and a structlog
access line. It answers the same route from a dict through a response model.
`python -m bench.peer_stack` (reads APP_PORT); benchmark-only, never imported by the app."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from prometheus_fastapi_instrumentator import Instrumentator
from pydantic import BaseModel
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.middleware.base import BaseHTTPMiddleware

from bench._server import serve_plain

log = structlog.get_logger()
limiter = Limiter(key_func=get_remote_address)
app = FastAPI()
app.state.limiter = limiter
app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

USERS = {1: {"id": 1, "email": "admin@example.com", "name": "Admin", "role": "admin"}}


class UserOut(BaseModel):
    """The same shape as the real route's answer, less the timestamps."""

    id: int
    email: str
    name: str
    role: str


@app.get("/api/v1/users/{user_id}", response_model=UserOut)
@limiter.limit("1000000000/minute")  # never refuses: its work is measured, as in ours
async def get_user(request: Request, user_id: int) -> dict[str, object]:
    """A user from a dict."""
    return USERS[user_id]


@app.get("/live")
async def live() -> dict[str, str]:
    """For the benchmark's readiness wait."""
    return {"status": "alive"}


async def timeout(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    return await asyncio.wait_for(call_next(request), 10)


async def access_log(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    log.info("request", method=request.method, path=request.url.path, status=response.status_code)
    return response


app.add_middleware(BaseHTTPMiddleware, dispatch=timeout)
app.add_middleware(BaseHTTPMiddleware, dispatch=access_log)
app.add_middleware(CorrelationIdMiddleware)
app.add_middleware(GZipMiddleware, minimum_size=500)
app.add_middleware(CORSMiddleware, allow_origins=["http://localhost:3000"])
Instrumentator().instrument(app).expose(app)

if __name__ == "__main__":
    serve_plain(app)
