"""The RFC 9457 problem-details body, for the OpenAPI schema of every error answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.http.problems import PROBLEM_MEDIA_TYPE


class FieldError(BaseModel):
    """One validation failure: where, what, and its machine-readable type."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An error answer (`application/problem+json`)."""

    type: str = Field(examples=["/problems/not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["User 42 does not exist."])
    instance: str = Field(examples=["/api/v1/users/42"])
    request_id: str | None = Field(examples=["5f2b8c1e9a0d4c7e"])
    errors: list[FieldError] | None = Field(default=None, description="Only on 422 answers.")
    trace_id: str | None = Field(
        default=None,
        description="Only on 5xx answers with tracing on: the trace that shows what happened.",
    )


PROBLEM_REF = "#/components/schemas/Problem"


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries documenting that a route may answer these statuses."""
    # Under the media type errors are really sent as; the schema itself is added to the
    # components by `app/api/openapi.py` (FastAPI would file a `model` under application/json).
    return {
        status: {
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
            "description": _DESCRIPTIONS[status],
        }
        for status in statuses
    }


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid or expired bearer token",
    403: "Not allowed for this account",
    404: "No such resource",
    409: "Conflict with the current state",
    410: "Gone: kept no longer (an evicted scoring result)",
    412: "If-Match precondition failed; nothing changed",
    413: "Request body too large",
    422: "Validation failed",
    429: "Rate limit exceeded; see Retry-After",
    500: "Internal error (a bug, a simulated failure, or a worker process that died)",
    503: "Temporarily unavailable (circuit open, draining or overloaded); see Retry-After",
    504: "The request timed out",
}
