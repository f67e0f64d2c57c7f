"""`/api/v1/admin/readiness`: drain this replica's readiness by hand, to watch what Kubernetes
sees during a rollout (the Service stops sending it traffic; it keeps serving what reaches it).

Admin only, and not mounted in production (`create_app` leaves the router out there): a drain
button is a teaching aid, not an operations tool — in production a rollout drains for you.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, StrictBool

from app.api.deps import API_PREFIX, CurrentUser, LifecycleDep
from app.core.exceptions import Forbidden
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


def _require_admin(is_admin: bool) -> None:
    if not is_admin:
        raise Forbidden("Only an admin can drain a replica.")
