"""Questions about the app's routes asked below FastAPI: which routes match a request, its
route template (for logs and metric labels, never the raw path), and the methods a path allows."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import Match
from starlette.types import Scope

UNMATCHED_ROUTE = "<unmatched>"
# Every method the app serves, in the order `Allow` and CORS list them.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def matching_routes(scope: Scope) -> Iterator[RouteContext]:
    """The app's routes whose path matches the request (whatever their method)."""
    router = getattr(scope.get("app"), "router", None)
    if router is None:
        return
    for route in iter_route_contexts(router.routes):
        match, _ = route.matches(scope)
        if match != Match.NONE:
            yield route


def route_template(scope: Scope) -> str:
    """`/api/v1/users/{user_id}` for `/api/v1/users/7`; `UNMATCHED_ROUTE` when nothing matched.

    FastAPI records its own routes in `scope["route"]` while routing; plain Starlette routes
    (`/docs`, `/openapi.json`) are not recorded there, so those are matched again here. Call it
    after the app has handled the request.
    """
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    for route in matching_routes(scope):
        if route.path:
            return route.path
    return UNMATCHED_ROUTE


def allowed_methods(scope: Scope) -> str:
    """The `Allow` value for the request's path: the methods of every route on it.

    Starlette's own 405 names only the methods of the first route that matched the path.
    """
    methods: set[str] = set()
    for route in matching_routes(scope):
        methods.update(route.methods or ())
    ordered = [m for m in HTTP_METHODS if m in methods]
    ordered += sorted(methods - set(HTTP_METHODS))
    return ", ".join(ordered)


def under_prefix(path: str, prefix: str) -> bool:
    """True when `path` is `prefix` or below it (`/a/b` is under `/a`, `/ab` is not)."""
    return path == prefix or path.startswith(prefix + "/")
