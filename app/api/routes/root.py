"""`GET /`: a small index of what a learner can try."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app import __version__
from app.api.deps import API_PREFIX

router = APIRouter(tags=["meta"])


@router.get("/", summary="What to try")
async def index(request: Request) -> dict[str, object]:
    """Names the service, its version, and the routes worth trying first."""
    return {
        "name": request.app.title,
        "version": __version__,
        "docs": "/docs",
        "openapi": "/openapi.json",
        "try": {
            "register": f"POST {API_PREFIX}/users",
            "login": f"POST {API_PREFIX}/auth/token",
            "me": f"GET {API_PREFIX}/auth/me",
            "users": f"GET {API_PREFIX}/users",
        },
    }
