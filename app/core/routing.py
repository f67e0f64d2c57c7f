"""The route template of a request, for logs and metric labels (never the raw path)."""

from __future__ import annotations

from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import Scope

UNMATCHED_ROUTE = "<unmatched>"


def route_template(scope: Scope) -> str:
    """`/api/v1/users/{user_id}` for `/api/v1/users/7`; `UNMATCHED_ROUTE` when nothing matched.

    FastAPI records its own routes in `scope["route"]` while routing; plain Starlette routes
    (`/docs`, `/openapi.json`) are not recorded there, so those are matched again here. Call it
    after the app has handled the request.
    """
    path = getattr(scope.get("route"), "path", None)
    if path:
        return path
    router = getattr(scope.get("app"), "router", None)
    if router is not None:
        for route in iter_route_contexts(router.routes):
            match, _ = route.matches(scope)
            if match != Match.NONE and route.path:
                return route.path
    return UNMATCHED_ROUTE
