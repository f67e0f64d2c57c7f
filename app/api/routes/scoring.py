"""`/api/v1/scoring` and `/api/v1/cpu-intensive`: CPU work in the process pool.

The scoring routes take the raw body: it is validated inside a worker, so a 100,000-record
request never occupies the event loop. A pool place is reserved before the body is read, so an
overloaded server answers 503 without buffering anything.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.api.deps import API_PREFIX, ClientKey, ScoringServiceDep
from app.schemas.problem import problem_responses
from app.schemas.scoring import (
    CpuDemoRequest,
    CpuDemoResult,
    JobAccepted,
    JobStatus,
    ScoringRequest,
    ScoringResult,
)
from app.stores.jobs import ScoringJob

router = APIRouter(prefix=f"{API_PREFIX}/scoring", tags=["scoring"])
cpu_router = APIRouter(prefix=API_PREFIX, tags=["scoring"])

# The body is parsed in a worker, so FastAPI does not see a body parameter: describe it here.
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ScoringRequest"}}
        },
    }
}
RAW_BODY_MODELS = (ScoringRequest,)


def _job_status(job: ScoringJob, result: bytes | None) -> Response:
    # The result is kept encoded (bounded by its bytes): spliced in as it is, never decoded.
    status = JobStatus(
        id=job.id,
        status=job.status,
        progress=job.progress,
        created_at=job.created_at,
        finished_at=job.finished_at,
        error=job.error,
    ).model_dump_json(exclude={"result"})
    body = status.encode()
    if result is not None:
        body = body[:-1] + b',"result":' + result + b"}"
    return Response(body, media_type="application/json")


@router.post(
    "",
    response_model=ScoringResult,
    responses=problem_responses(413, 422, 500, 503, 504),
    openapi_extra=_BODY_DOC,
    summary="Score records now",
)
async def score(request: Request, service: ScoringServiceDep) -> JSONResponse:
    """Scores, ranks and per-feature statistics, computed in a worker process."""
    with service.reserve() as slot:  # a place first: a body is read only if it can be scored
        body = await request.body()
        return JSONResponse(await service.score(slot, body))


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses=problem_responses(413, 422, 500, 503, 504),
    openapi_extra=_BODY_DOC,
    summary="Score records in the background",
)
async def submit_job(
    request: Request, service: ScoringServiceDep, client_key: ClientKey
) -> JSONResponse:
    """Validates at once (422), then scores in chunks; follow it at `Location`. Only the
    submitter (the same token, or without one the same address) can read the job."""
    service.check_job_capacity()
    with service.reserve() as slot:
        job = await service.submit_job(slot, await request.body(), owner=client_key)
    location = f"{router.prefix}/jobs/{job.id}"
    body = JobAccepted(id=job.id, status=job.status, location=location).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": location})


@router.get(
    "/jobs/{job_id}",
    response_model=JobStatus,
    responses=problem_responses(404, 410),
    summary="A scoring job's status, progress and result",
)
async def get_job(job_id: str, service: ScoringServiceDep, client_key: ClientKey) -> Response:
    """Status (`queued`, `running`, `done`, `failed`), progress 0-1 and, when done, the result;
    404 for a job someone else submitted; 410 for a finished job whose result was evicted."""
    return _job_status(*await service.get_job(job_id, owner=client_key))


@cpu_router.post(
    "/cpu-intensive",
    response_model=CpuDemoResult,
    responses=problem_responses(422, 500, 503, 504),
    summary="A CPU-bound demo in the process pool",
)
async def cpu_intensive(payload: CpuDemoRequest, service: ScoringServiceDep) -> CpuDemoResult:
    """Estimates pi from `samples` random points in a worker; says how long and which process."""
    with service.reserve() as slot:
        return CpuDemoResult(**await service.estimate_pi(slot, payload.samples, payload.seed))
