"""Our exceptions, and the one place where every error becomes RFC 9457 problem details.

Services raise the `AppError` subclasses below and never import FastAPI. The handlers registered
by `install_error_handlers` turn them, Starlette's HTTP errors and validation errors into
`application/problem+json`; `RequestContextMiddleware` uses `internal_error_response` for
anything unhandled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import Scope

PROBLEM_MEDIA_TYPE = "application/problem+json"
REQUEST_ID_SCOPE_KEY = "request_id"

_FASTAPI_BODY_ERROR = "There was an error parsing the body"
# The order in which `Allow` lists methods, whatever order the routes were declared in.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class AppError(Exception):
    """Base of the errors our code raises on purpose; each maps to one HTTP status."""

    status: int = 500
    type: str = "about:blank"

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})

    @property
    def title(self) -> str:
        """The short, fixed summary of this problem type."""
        return HTTPStatus(self.status).phrase


class BadRequest(AppError):
    """The request is syntactically fine but cannot be acted on."""

    status = 400


class Unauthorized(AppError):
    """No valid credentials; the answer invites a Bearer token."""

    status = 401
    type = "/problems/unauthorized"

    def __init__(self, detail: str, *, invalid_token: bool = False) -> None:
        challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(AppError):
    """Authenticated, but not allowed to do this."""

    status = 403
    type = "/problems/forbidden"


class NotFound(AppError):
    """The addressed resource does not exist."""

    status = 404
    type = "/problems/not-found"


class Conflict(AppError):
    """The request conflicts with the current state (a taken email, a request in flight)."""

    status = 409
    type = "/problems/conflict"


class PreconditionFailed(AppError):
    """An `If-Match` precondition did not hold; nothing was changed."""

    status = 412
    type = "/problems/precondition-failed"


class PayloadTooLarge(StarletteHTTPException):
    """A request body over the limit.

    An `HTTPException` rather than an `AppError` because it is raised from inside `receive()`,
    while FastAPI reads the body, and FastAPI re-raises only HTTP exceptions from there.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"The request body exceeds the limit of {limit} bytes.",
            # The rest of the body stays unread, so the connection cannot be reused.
            headers={"Connection": "close"},
        )


class UnprocessableContent(AppError):
    """Well-formed input that breaks a rule validation could not express."""

    status = 422
    type = "/problems/unprocessable"


class ValidationFailed(AppError):
    """Input that failed validation outside FastAPI (in a worker process, say)."""

    status = 422
    type = "/problems/validation"

    def __init__(self, detail: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.errors = errors


class ServiceUnavailable(AppError):
    """A dependency or the whole service cannot serve now; retry later."""

    status = 503


def request_id_of(scope: Scope) -> str | None:
    """The request id that `RequestContextMiddleware` assigned to this request."""
    return scope.get(REQUEST_ID_SCOPE_KEY)


def problem_response(
    scope: Scope,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """Build an RFC 9457 problem response for the request in `scope`."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": scope.get("path", ""),
        "request_id": request_id_of(scope),
    }
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def internal_error_response(scope: Scope, exc: BaseException, *, show_detail: bool) -> Response:
    """The 500 answer for an unhandled exception: exception text only in development."""
    detail = (
        f"{type(exc).__name__}: {exc}"
        if show_detail
        else "An unexpected error occurred. Quote the request_id when reporting it."
    )
    return problem_response(scope, 500, detail)


def _allowed_methods(request: Request) -> str:
    # Starlette's own 405 names only the methods of the first route that matched the path;
    # collect them from every route on the path instead.
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE and route.methods:
            methods.update(route.methods)
    ordered = [m for m in _METHOD_ORDER if m in methods]
    ordered += sorted(methods - set(_METHOD_ORDER))
    return ", ".join(ordered)


def _public_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    # FastAPI's default 422 echoes `input`, which would put a rejected password in the answer;
    # only the location, message and type leave the server.
    return [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in errors
    ]


async def _app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    extra = {"errors": _public_errors(exc.errors)} if isinstance(exc, ValidationFailed) else None
    return problem_response(
        request.scope,
        exc.status,
        exc.detail,
        title=exc.title,
        type_=exc.type,
        headers=exc.headers,
        extra=extra,
    )


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    detail = exc.detail
    if exc.status_code == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        detail = f"No resource at {request.url.path}."
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}."
    if exc.status_code == 400 and detail == _FASTAPI_BODY_ERROR:
        # A body that is not even text (invalid UTF-8): malformed like bad JSON, answered alike.
        error = {
            "loc": ["body"],
            "msg": "The body is not valid UTF-8 JSON.",
            "type": "json_invalid",
        }
        return problem_response(
            request.scope,
            422,
            "The request is not valid; see errors.",
            type_="/problems/validation",
            extra={"errors": [error]},
        )
    return problem_response(request.scope, exc.status_code, str(detail), headers=headers)


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _public_errors(exc.errors())
    return problem_response(
        request.scope,
        422,
        "The request is not valid; see errors.",
        type_="/problems/validation",
        extra={"errors": errors},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem-details handlers on `app`."""
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
