"""The exception handlers: where our errors, Starlette's HTTP errors and FastAPI's validation
errors become RFC 9457 problem details. Anything unhandled is answered by the request-context
layer (`internal_error_response`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.core.breaker import report_dependency_failure
from app.core.exceptions import AppError, ProblemType, ValidationFailed
from app.http.problems import problem_response
from app.http.routing import allowed_methods

_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_INVALID = "The request is not valid; see errors."


def _public_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    # FastAPI's default 422 echoes `input`, which would put a rejected password in the answer;
    # only the location, message and type leave the server.
    return [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in errors
    ]


def _invalid(request: Request, errors: list[dict[str, Any]]) -> Response:
    return problem_response(
        request.scope, 422, _INVALID, type_=ProblemType.VALIDATION, extra={"errors": errors}
    )


async def _app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if exc.dependency_failure:
        report_dependency_failure(request.scope)
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
        headers["Allow"] = allowed_methods(request.scope)
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}."
    if exc.status_code == 400 and detail == _FASTAPI_BODY_ERROR:
        # A body that is not even text (invalid UTF-8): malformed like bad JSON, answered alike.
        error = {
            "loc": ["body"],
            "msg": "The body is not valid UTF-8 JSON.",
            "type": "json_invalid",
        }
        return _invalid(request, [error])
    return problem_response(request.scope, exc.status_code, str(detail), headers=headers)


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _invalid(request, _public_errors(exc.errors()))


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem-details handlers on `app`."""
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
