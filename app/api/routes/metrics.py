"""`GET /metrics`: Prometheus text exposition."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.core.metrics import render_metrics

router = APIRouter(tags=["probes"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """Every metric of this process (or of all workers in multiprocess mode)."""
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
