"""`/api/v1/users`: CRUD with ETags, conditional requests and idempotent creation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

from app.api.deps import (
    API_PREFIX,
    ClientAddress,
    ClientKey,
    CurrentUser,
    IdempotencyDep,
    IdempotencyKey,
    IfMatch,
    RenderedUsers,
    StoreName,
    UserServiceDep,
    Viewer,
    app_services,
    sees_private_fields,
    store_name,
    viewer,
)
from app.api.etags import entity_tag, if_match_versions, if_none_match_hits
from app.api.openapi import answered_with, hand_read_parameters, header_parameter
from app.api.representations import user_json
from app.api.stale import stale_marks
from app.container import AppServices
from app.core.exceptions import Conflict, Forbidden, StoreUnavailable
from app.http.representations import RepresentationCache
from app.http.routing import HTTP_METHODS
from app.schemas.problem import problem_responses
from app.schemas.users import (
    UserCreate,
    UserList,
    UserOut,
    UserReplace,
    UserSort,
    UserUpdate,
    public_view,
    user_list_json,
)
from app.services.idempotency import REPLAYED_HEADER
from app.services.users import User
from app.stores.idempotency import Outcome

router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["users"])

ITEM_METHODS = ", ".join(m for m in HTTP_METHODS if m != "POST")
UserId = Annotated[int, Path(ge=1, le=2**53, description="A positive integer id.")]


def _tag(user: User) -> str:
    return entity_tag(user.id, user.version)


def _user_response(
    rendered: RepresentationCache, user: User, tag: str | None = None, *, full: bool = True
) -> Response:
    # Writes answer their owner or an admin: every field. Reads show email and role only to
    # them (`full`); the representation depends on the token, so caches must key on it.
    return Response(
        user_json(rendered, user, full=full),
        media_type="application/json",
        headers={"ETag": tag or _tag(user), "Vary": "Authorization"},
    )


# --- The fast path ------------------------------------------------------------------------
# The single-user read is the API's hot path, so it is tuned, and the only route here that
# is: it reads its services and `If-None-Match` from the request (`app_services`) instead of
# through `Depends` and `Header`, which FastAPI resolves anew on every request (the cost is
# measured in docs/benchmarks.md), documents that header by hand, and is declared first,
# because FastAPI tries a router's routes in declaration order. Every other route below is
# FastAPI as its documentation teaches it.
IF_NONE_MATCH = header_parameter("If-None-Match", "304 if current.")


@router.get(
    "/{user_id}",
    responses={
        **answered_with(UserOut),
        304: {"description": "Not modified (If-None-Match)"},
        **problem_responses(404, 422),
    },
    summary="Get a user",
    openapi_extra=hand_read_parameters(IF_NONE_MATCH),
)
async def get_user(user_id: UserId, request: Request) -> Response:
    """One user, with its `ETag`; `If-None-Match` with the current tag gets 304. `email` and
    `role` are shown to the user themself and to admins (a bearer token), to no one else."""
    services = app_services(request)
    try:
        user = await services.users.get(user_id)
    except StoreUnavailable:
        return await _stale_user(request, services, user_id)
    tag = _tag(user)
    if if_none_match_hits(request.headers.get("if-none-match", ""), tag):
        return Response(status_code=304, headers={"ETag": tag, "Vary": "Authorization"})
    full = "authorization" in request.headers and sees_private_fields(
        await viewer(request), user_id
    )
    return _user_response(services.rendered_users, user, tag, full=full)


async def _stale_user(request: Request, services: AppServices, user_id: int) -> Response:
    """The store failed: this replica's last copy of the user, marked stale, if it has one
    young enough (`APP_STALE_IF_ERROR_SECONDS`); else the 503 stands."""
    found = services.users.cached_copy(user_id)
    if found is None:
        raise StoreUnavailable("The shared store did not answer; retry shortly.")
    user, age = found
    marks = stale_marks(age, services.users.cache.ttl, store_name(request))
    tag = _tag(user)
    if if_none_match_hits(request.headers.get("if-none-match", ""), tag):
        return Response(status_code=304, headers={"ETag": tag, "Vary": "Authorization", **marks})
    full = False
    if "authorization" in request.headers:
        # Who is asking may itself need the store (a revoked token is checked there): if it
        # cannot be told, the copy is shown as anyone may see it, never with more.
        try:
            full = sees_private_fields(await viewer(request), user_id)
        except StoreUnavailable:
            full = False
    response = _user_response(services.rendered_users, user, tag, full=full)
    response.headers.update(marks)
    return response


# --- The rest of the API ------------------------------------------------------------------


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=problem_responses(409, 413, 422),
    summary="Register a user",
)
async def create_user(
    payload: UserCreate,
    users: UserServiceDep,
    idempotency: IdempotencyDep,
    client_key: ClientKey,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create an account. With `Idempotency-Key`, a repeat replays the first answer."""

    stamp: str | None = None

    async def register() -> Outcome:
        replayed = False
        try:
            user = await users.create(
                email=payload.email,
                name=payload.name,
                password=payload.password,
                request_stamp=stamp,
            )
        except Conflict:
            # The first attempt may have been applied though its client heard 503 or nothing:
            # then the account carries this request's stamp, and its answer is replayed.
            earlier = await users.created_by_request(payload.email, stamp) if stamp else None
            if earlier is None:
                raise
            user, replayed = earlier, True
        headers = {"Location": f"{router.prefix}/{user.id}", "ETag": _tag(user)}
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return Outcome(status=201, body=public_view(user, full=True), headers=headers)

    if idempotency_key is None:
        outcome = await register()
    else:
        key = idempotency_key.strip('"')
        fingerprint = idempotency.fingerprint(payload.model_dump(mode="json"))
        stamp = idempotency.request_stamp(client_key, key, fingerprint)
        outcome, _ = await idempotency.run(client_key, key, fingerprint, register)
    return JSONResponse(outcome.body, status_code=outcome.status, headers=dict(outcome.headers))


@router.get(
    "", response_model=UserList, responses=problem_responses(403, 422), summary="List users"
)
async def list_users(
    users: UserServiceDep,
    rendered: RenderedUsers,
    store: StoreName,
    reader: Viewer,
    skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    sort: UserSort = "id",
    q: Annotated[str | None, Query(max_length=100, description="Name contains (any case).")] = None,
    email: Annotated[
        str | None, Query(max_length=254, description="Exact email (any case); admins only.")
    ] = None,
    is_active: bool | None = None,
) -> Response:
    """A page of users, filtered and sorted; `total` counts every match. Each item's `email`
    and `role` are shown to that user and to admins only; the `email` filter is for admins."""
    if email is not None and (reader is None or not reader.is_admin):
        raise Forbidden("Only admins may look users up by email.")
    headers = {"Vary": "Authorization"}
    try:
        page = await users.list(
            skip=skip, limit=limit, sort=sort, name_contains=q, email=email, is_active=is_active
        )
    except StoreUnavailable:
        found = users.cached_page(
            skip=skip, limit=limit, sort=sort, name_contains=q, email=email, is_active=is_active
        )
        if found is None:
            raise
        page, age = found
        headers.update(stale_marks(age, users.cache.ttl, store))
    items = [
        user_json(rendered, user, full=sees_private_fields(reader, user.id)) for user in page.items
    ]
    body = user_list_json(items, page.total, skip, limit)
    return Response(body, media_type="application/json", headers=headers)


@router.head(
    "/{user_id}",
    responses=problem_responses(404, 422),
    summary="User headers only",
    openapi_extra=hand_read_parameters(IF_NONE_MATCH),
)
async def head_user(user_id: UserId, request: Request) -> Response:
    """The headers GET would send, without the body."""
    return await get_user(user_id, request)


@router.options(
    "/{user_id}",
    status_code=204,
    responses=problem_responses(422),
    summary="Methods allowed on a user",
)
async def user_options(user_id: UserId) -> Response:
    """Lists the methods in `Allow` (a CORS preflight is answered by the CORS layer instead)."""
    return Response(status_code=204, headers={"Allow": ITEM_METHODS})


@router.put(
    "/{user_id}",
    responses={
        **answered_with(UserOut),
        **problem_responses(401, 403, 404, 409, 412, 413, 422),
    },
    summary="Replace a user",
)
async def replace_user(
    user_id: UserId,
    payload: UserReplace,
    actor: CurrentUser,
    users: UserServiceDep,
    rendered: RenderedUsers,
    if_match: IfMatch = None,
) -> Response:
    """Replace `email`, `name` and `is_active` (owner or admin)."""
    user = await users.replace(
        user_id,
        email=payload.email,
        name=payload.name,
        is_active=payload.is_active,
        actor=actor,
        expected_versions=if_match_versions(if_match, user_id),
    )
    return _user_response(rendered, user)


@router.patch(
    "/{user_id}",
    responses={
        **answered_with(UserOut),
        **problem_responses(401, 403, 404, 409, 412, 413, 422),
    },
    summary="Change some fields of a user",
)
async def update_user(
    user_id: UserId,
    payload: UserUpdate,
    actor: CurrentUser,
    users: UserServiceDep,
    rendered: RenderedUsers,
    client_address: ClientAddress,
    if_match: IfMatch = None,
) -> Response:
    """Change only the fields sent (owner or admin). Changing your own `password` needs
    `current_password` too (counted by the login throttle: 429 past it); a new password ends
    every token issued before it."""
    changes = payload.model_dump(exclude_unset=True)
    current_password = changes.pop("current_password", None)
    user = await users.update(
        user_id,
        changes,
        actor=actor,
        expected_versions=if_match_versions(if_match, user_id),
        current_password=current_password,
        client_address=client_address,
    )
    return _user_response(rendered, user)


@router.delete(
    "/{user_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 412, 422),
    summary="Delete a user",
)
async def delete_user(
    user_id: UserId, actor: CurrentUser, users: UserServiceDep, if_match: IfMatch = None
) -> Response:
    """Delete an account (owner or admin); its id is never reused."""
    await users.delete(user_id, actor=actor, expected_versions=if_match_versions(if_match, user_id))
    return Response(status_code=204)
