"""Probes for Kubernetes and people: `/live`, `/ready`, `/health`, `/health/detailed`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.api.deps import HealthDep, LifecycleDep, SettingsDep, Viewer
from app.api.openapi import hand_read_parameters
from app.core.exceptions import Forbidden, ProblemType, Unauthorized
from app.http.problems import problem_response
from app.schemas.problem import problem_responses
from app.services.health import CheckResult

router = APIRouter(tags=["probes"])


def _not_ok(request: Request, detail: str, checks: list[dict[str, Any]] | None) -> Response:
    extra = {"checks": checks} if checks is not None else None
    return problem_response(request.scope, 503, detail, type_=ProblemType.UNAVAILABLE, extra=extra)


@router.get("/live", summary="Liveness")
async def live() -> dict[str, str]:
    """200 while the process can serve requests; checks nothing else, so it never flaps."""
    return {"status": "alive"}


# `?verbose` is read by hand: a declared parameter would make FastAPI document a 422 that this
# probe never sends (any value, or none, means verbose).
_VERBOSE = {
    "name": "verbose",
    "in": "query",
    "required": False,
    "allowEmptyValue": True,
    "schema": {"type": "string"},
    "description": "Present (with any value, or none): list each check and its result.",
}


@router.get(
    "/ready",
    summary="Readiness",
    responses=problem_responses(503),
    openapi_extra=hand_read_parameters(_VERBOSE),
)
async def ready(request: Request, lifecycle: LifecycleDep, health: HealthDep) -> Response:
    """200 once start-up finished and every critical component works; 503 before that and
    from the moment shutdown begins. `?verbose` lists each check."""
    verbose = request.query_params.get("verbose")
    checks: list[dict[str, Any]] = [
        {"name": "startup", "status": "ok" if lifecycle.started else "fail"},
        {"name": "shutdown", "status": "fail" if lifecycle.shutting_down else "ok"},
        {"name": "drain", "status": "fail" if lifecycle.drained else "ok"},
    ]
    if lifecycle.started:
        results = await health.run(critical_only=True)
        checks += [r.as_dict() for r in results]
    ok = all(check["status"] != "fail" for check in checks)
    listed = checks if verbose is not None else None
    if not ok:
        reason = "a critical check failed"
        if lifecycle.drained:
            reason = "drained by an admin"
        if lifecycle.shutting_down:
            reason = "shutting down"
        if not lifecycle.started:
            reason = "starting up"
        return _not_ok(request, f"Not ready: {reason}.", listed)
    body: dict[str, Any] = {"status": "ready"}
    if listed is not None:
        body["checks"] = listed
    return JSONResponse(body)


def _overall(results: list[CheckResult]) -> str:
    if any(r.critical and r.status == "fail" for r in results):
        return "fail"
    return "ok" if all(r.status == "ok" for r in results) else "degraded"


@router.get("/health", summary="Health", responses=problem_responses(503))
async def health(request: Request, checker: HealthDep) -> Response:
    """200 `{"status": "ok"}` while every critical component works, else 503."""
    results = await checker.run(critical_only=True)
    if _overall(results) == "fail":
        return _not_ok(request, "A critical component is failing.", [r.as_dict() for r in results])
    return JSONResponse({"status": "ok"})


@router.get(
    "/health/detailed",
    summary="Health of each component",
    responses=problem_responses(401, 403, 503),
)
async def health_detailed(
    request: Request, checker: HealthDep, settings: SettingsDep, reader: Viewer
) -> Response:
    """Every component with its status and check latency, and the replica that answered
    (`instance`); 503 if a critical one fails. In production it names hosts, pids and
    patterns only to an admin (a bearer token)."""
    if settings.env == "production":
        if reader is None:
            raise Unauthorized("/health/detailed needs an admin's bearer token in production.")
        if not reader.is_admin:
            raise Forbidden("/health/detailed is for admins in production.")
    results = await checker.run()
    checks = [r.as_dict() for r in results]
    overall = _overall(results)
    if overall == "fail":
        return _not_ok(request, "A critical component is failing.", checks)
    # `instance`: which replica answered (APP_INSTANCE_ID, else the host name: the pod's).
    return JSONResponse({"status": overall, "instance": settings.instance, "checks": checks})
