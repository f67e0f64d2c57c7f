"""`/api/v1/admin/readiness`: drain this replica's readiness by hand, to watch what Kubernetes
sees during a rollout (the Service stops sending it traffic; it keeps serving what reaches it).
`/api/v1/admin/faults`: inject a fault into a dependency (Redis) for a while, to watch the
breaker, the retries and the stale reads work (`app/core/faults.py`).
`/api/v1/admin/scoring/kill-worker`: kill a scoring worker process for real, to watch the pool
replace itself and the task that meets the dead worker run again.

Admin only, and not mounted in production (`create_app` leaves the router out there): a drain
button and a fault switch are teaching aids, not operations tools.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from fastapi import APIRouter, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)

from app.api.deps import API_PREFIX, CurrentUser, DependenciesDep, LifecycleDep, ProcessPoolDep
from app.core.dependency import Dependency
from app.core.exceptions import Conflict, Forbidden, NotFound
from app.core.faults import MAX_FAULT_SECONDS
from app.schemas.problem import problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/admin", tags=["admin"])


class Readiness(BaseModel):
    """Whether this replica asks to receive traffic (`/ready`)."""

    model_config = ConfigDict(extra="forbid")

    ready: StrictBool  # `0`, `"no"` or `"false"` are refused, not read as false


@router.get("/readiness", response_model=Readiness, responses=problem_responses(401, 403))
async def get_readiness(actor: CurrentUser, lifecycle: LifecycleDep) -> Readiness:
    """Whether an admin drained this replica (shutdown and failed checks are on `/ready`)."""
    _require_admin(actor.is_admin)
    return Readiness(ready=not lifecycle.drained)


@router.put("/readiness", response_model=Readiness, responses=problem_responses(401, 403, 422))
async def set_readiness(body: Readiness, actor: CurrentUser, lifecycle: LifecycleDep) -> Readiness:
    """`{"ready": false}` turns `/ready` to 503 on this replica while it keeps serving;
    `{"ready": true}` turns it back. Per replica, and forgotten on restart."""
    _require_admin(actor.is_admin)
    lifecycle.set_drained(not body.ready)
    return Readiness(ready=not lifecycle.drained)


def _require_admin(is_admin: bool, what: str = "drain a replica") -> None:
    if not is_admin:
        raise Forbidden(f"Only an admin can {what}.")


class FaultRequest(BaseModel):
    """A fault to inject into one dependency, ending by itself after `seconds`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kind": "outage", "seconds": 20},
                {"kind": "latency", "seconds": 30, "latency_ms": 2000},
                {"kind": "error", "seconds": 30, "error_rate": 0.5},
            ]
        },
    )

    kind: Literal["latency", "error", "outage"]
    seconds: StrictInt | StrictFloat = Field(ge=1, le=MAX_FAULT_SECONDS)
    latency_ms: StrictInt | None = Field(default=None, ge=1, le=60_000)
    error_rate: StrictInt | StrictFloat | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _parameters_fit_the_kind(self) -> Self:
        if (self.kind == "latency") != (self.latency_ms is not None):
            raise ValueError("latency_ms is required for a latency fault, and only for it")
        if self.error_rate is not None and self.kind != "error":
            raise ValueError("error_rate is only for an error fault")
        return self


def _dependency(dependencies: list[Dependency], name: str) -> Dependency:
    for dependency in dependencies:
        if dependency.name == name:
            return dependency
    names = ", ".join(d.name for d in dependencies) or "none (APP_STORE=memory)"
    raise NotFound(f"No dependency named {name!r} here; there are: {names}.")


@router.get("/faults", responses=problem_responses(401, 403))
async def list_faults(actor: CurrentUser, dependencies: DependenciesDep) -> dict[str, Any]:
    """Each dependency of this replica and the fault injected into it, if any."""
    _require_admin(actor.is_admin, "see injected faults")
    return {"faults": [{"dependency": d.name, "fault": d.faults.snapshot()} for d in dependencies]}


@router.put("/faults/{dependency}", responses=problem_responses(401, 403, 404, 422))
async def inject_fault(
    dependency: str, body: FaultRequest, actor: CurrentUser, dependencies: DependenciesDep
) -> dict[str, Any]:
    """Inject `outage` (every call fails, the recovery probe too), `error` (a share
    `error_rate` of calls fail) or `latency` (`latency_ms` before every call) into one
    dependency of this replica for `seconds` (1-300); it ends by itself. Replaces any fault
    already there. While Redis is faulted, signing in needs it too: wait for the end."""
    _require_admin(actor.is_admin, "inject faults")
    target = _dependency(dependencies, dependency)
    target.faults.inject(
        body.kind,
        float(body.seconds),
        latency_seconds=(body.latency_ms or 0) / 1000,
        error_rate=float(body.error_rate or 1.0),
        actor=str(actor.id),
    )
    return {"dependency": target.name, "fault": target.faults.snapshot()}


@router.delete("/faults/{dependency}", status_code=204, responses=problem_responses(401, 403, 404))
async def clear_fault(
    dependency: str, actor: CurrentUser, dependencies: DependenciesDep
) -> Response:
    """End the dependency's fault now (204 whether or not there was one)."""
    _require_admin(actor.is_admin, "clear faults")
    _dependency(dependencies, dependency).faults.clear()
    return Response(status_code=204)


class KilledWorker(BaseModel):
    """The scoring worker a drill killed, and the pool's state right after."""

    killed_pid: int
    workers: int = Field(description="Workers the pool runs when whole.")
    restarts: int = Field(
        description="Times the pool was replaced so far (the next task adds one)."
    )


@router.post(
    "/scoring/kill-worker",
    response_model=KilledWorker,
    responses=problem_responses(401, 403, 409),
)
async def kill_scoring_worker(actor: CurrentUser, pool: ProcessPoolDep) -> KilledWorker:
    """SIGKILL one worker process of this replica's scoring pool, as an out-of-memory kill or
    a crash would. Nothing is lost: the next task meets the broken pool, which is replaced,
    and that task runs again on the new one (`restarts` and the `retried` tasks count it)."""
    _require_admin(actor.is_admin, "kill scoring workers")
    stats = pool.stats()
    killed = pool.kill_worker()
    if killed is None:
        raise Conflict(
            "No scoring worker is alive to kill: none has started yet, or the pool is being "
            "replaced."
        )
    return KilledWorker(killed_pid=killed, workers=stats["workers"], restarts=stats["restarts"])
