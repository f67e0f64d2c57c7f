"""`GET /metrics`: Prometheus text exposition."""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from app.api.deps import ClientAddress, SettingsDep
from app.core.config import IpNetwork
from app.core.metrics import render_metrics
from app.http.problems import problem_response


def _allowed(address: str, networks: list[IpNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


router = APIRouter(tags=["probes"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "The Prometheus text exposition format, version 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(
    request: Request, settings: SettingsDep, client_address: ClientAddress
) -> Response:
    """Every metric of this process (or of all workers in multiprocess mode); with
    `APP_METRICS_ALLOWED_NETWORKS`, only to scrapers in those networks (404 to others). With
    tracing on, a scraper that accepts OpenMetrics gets it, exemplars included."""
    if settings.metrics_allowed_networks and not _allowed(
        client_address, settings.metrics_allowed_networks
    ):
        return problem_response(request.scope, 404, "Not Found")
    # OpenMetrics (with the latency histogram's trace-id exemplars) only when tracing is on and
    # the scraper asks for it, as Prometheus does; otherwise the text format, as always.
    openmetrics = settings.traces and "application/openmetrics-text" in request.headers.get(
        "accept", ""
    )
    body, content_type = render_metrics(openmetrics=openmetrics)
    return Response(body, media_type=content_type)
