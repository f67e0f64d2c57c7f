"""Dependencies, declared once as `Annotated` aliases so route signatures read like sentences.

Everything comes from the lifespan's typed state (`AppState`, built in `app/container.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Header
from fastapi.dependencies.models import Dependant
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from app.container import AppServices, AppState
from app.core.breaker import BreakerRegistry
from app.core.config import Settings
from app.core.connection_quota import ConnectionQuota
from app.core.dependency import Dependency
from app.core.exceptions import NotFound, ShuttingDown, Unauthorized
from app.core.lifecycle import Lifecycle
from app.http.representations import RepresentationCache
from app.services.auth import AuthService
from app.services.chat import ChatManager
from app.services.events import EventBus
from app.services.flaky_upstream import SimulatedUpstream
from app.services.fleet import FleetReporter
from app.services.health import HealthChecker
from app.services.idempotency import IdempotencyStore
from app.services.process_pool import ProcessPool
from app.services.scoring.service import ScoringService
from app.services.tickers import TickerDrops
from app.services.users import User, UserService

API_PREFIX = "/api/v1"
TOKEN_URL = f"{API_PREFIX}/auth/token"

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


# Dependencies are `async def` although none of them awaits: FastAPI runs plain `def`
# dependencies in the thread pool, a thread hop per dependency per request for nothing.
# They take an `HTTPConnection`, so WebSocket routes can use them as well as HTTP ones.
# Each reads the services itself rather than depending on a shared `services` dependency:
# FastAPI solves every level of a dependency tree per request, and the second level cost
# a users GET more than its own work did (bench/chain_layers.py).


def app_services(connection: HTTPConnection) -> AppServices:
    """The app's services, from the lifespan's state: for the one fast path that reads them
    without `Depends` (`get_user` in app/api/routes/users.py) and for the dependencies here."""
    return cast("HTTPConnection[AppState]", connection).state["services"]


async def _settings(connection: HTTPConnection) -> Settings:
    return app_services(connection).foundation.settings


async def _lifecycle(connection: HTTPConnection) -> Lifecycle:
    return app_services(connection).foundation.lifecycle


async def _breakers(connection: HTTPConnection) -> BreakerRegistry:
    return app_services(connection).foundation.breakers


async def _dependencies(connection: HTTPConnection) -> list[Dependency]:
    return list(app_services(connection).foundation.dependencies)


async def _health(connection: HTTPConnection) -> HealthChecker:
    return app_services(connection).health


def store_name(connection: HTTPConnection) -> str:
    """The dependency the users service reads through: `redis`, or the memory `store`."""
    dependencies = app_services(connection).foundation.dependencies
    return dependencies[0].name if dependencies else "store"


async def _store_name(connection: HTTPConnection) -> str:
    return store_name(connection)


async def _users(connection: HTTPConnection) -> UserService:
    return app_services(connection).users


async def _rendered_users(connection: HTTPConnection) -> RepresentationCache:
    return app_services(connection).rendered_users


async def _auth(connection: HTTPConnection) -> AuthService:
    return app_services(connection).auth


async def _idempotency(connection: HTTPConnection) -> IdempotencyStore:
    return app_services(connection).idempotency


async def _scoring(connection: HTTPConnection) -> ScoringService:
    return app_services(connection).scoring


async def _process_pool(connection: HTTPConnection) -> ProcessPool:
    return app_services(connection).process_pool


async def _bus(connection: HTTPConnection) -> EventBus:
    return app_services(connection).bus


async def _chat(connection: HTTPConnection) -> ChatManager:
    return app_services(connection).chat


async def _flaky_upstream(connection: HTTPConnection) -> SimulatedUpstream:
    upstream = app_services(connection).flaky_upstream
    if upstream is None:  # demos are off, and so is the router that asks
        raise NotFound("The resilience demos are not served here.")
    return upstream


async def _fleet(connection: HTTPConnection) -> FleetReporter:
    return app_services(connection).fleet


async def _tickers(connection: HTTPConnection) -> TickerDrops:
    return app_services(connection).tickers


@dataclass(frozen=True, slots=True)
class StreamAdmission:
    """What a long-lived stream route needs to admit a client: its quota and the client."""

    quota: ConnectionQuota
    client: str


async def _sse_admission(connection: HTTPConnection) -> StreamAdmission:
    services = app_services(connection)
    address = services.foundation.clients.client_address(connection.scope)
    return StreamAdmission(services.sse_quota, address)


async def _ws_admission(connection: HTTPConnection) -> StreamAdmission:
    services = app_services(connection)
    address = services.foundation.clients.client_address(connection.scope)
    return StreamAdmission(services.ws_quota, address)


async def _client_key(connection: HTTPConnection) -> str:
    # The key selects what a client owns (its scoring jobs, its idempotency keys): a token
    # that is signed but logged out, or whose credentials changed, must select nothing, so
    # it is checked as a login would be, and anything less than a valid token is the address.
    clients = app_services(connection).foundation.clients
    key = clients.client_key(connection.scope)
    if key.startswith("ip:") or await viewer(connection) is not None:
        return key
    return clients.address_key(connection.scope)


async def _client_address(connection: HTTPConnection) -> str:
    return app_services(connection).foundation.clients.client_address(connection.scope)


SettingsDep = Annotated[Settings, Depends(_settings)]
LifecycleDep = Annotated[Lifecycle, Depends(_lifecycle)]
BreakersDep = Annotated[BreakerRegistry, Depends(_breakers)]
# The dependencies called through a resilience pipeline (Redis, or the memory store).
DependenciesDep = Annotated[list[Dependency], Depends(_dependencies)]
HealthDep = Annotated[HealthChecker, Depends(_health)]
UserServiceDep = Annotated[UserService, Depends(_users)]
RenderedUsers = Annotated[RepresentationCache, Depends(_rendered_users)]
StoreName = Annotated[str, Depends(_store_name)]
AuthServiceDep = Annotated[AuthService, Depends(_auth)]
IdempotencyDep = Annotated[IdempotencyStore, Depends(_idempotency)]
ScoringServiceDep = Annotated[ScoringService, Depends(_scoring)]
ProcessPoolDep = Annotated[ProcessPool, Depends(_process_pool)]
EventBusDep = Annotated[EventBus, Depends(_bus)]
ChatDep = Annotated[ChatManager, Depends(_chat)]
TickersDep = Annotated[TickerDrops, Depends(_tickers)]
FleetDep = Annotated[FleetReporter, Depends(_fleet)]
FlakyUpstreamDep = Annotated[SimulatedUpstream, Depends(_flaky_upstream)]
SseAdmission = Annotated[StreamAdmission, Depends(_sse_admission)]
WsAdmission = Annotated[StreamAdmission, Depends(_ws_admission)]
ClientKey = Annotated[str, Depends(_client_key)]
ClientAddress = Annotated[str, Depends(_client_address)]
BearerToken = Annotated[str | None, Depends(_bearer)]


async def accepting_streams(lifecycle: LifecycleDep) -> None:
    """New long-lived streams are refused once shutdown has begun (503, come back elsewhere)."""
    if lifecycle.shutting_down:
        raise ShuttingDown()


def uses_bearer_token(dependant: Dependant) -> bool:
    """Whether a route (its dependency tree) reads the bearer token."""
    return any(
        dependency.call is _bearer or uses_bearer_token(dependency)
        for dependency in dependant.dependencies
    )


async def _current_user(auth: AuthServiceDep, token: BearerToken) -> User:
    return await auth.authenticate(token)


CurrentUser = Annotated[User, Depends(_current_user)]


async def viewer(connection: HTTPConnection) -> User | None:
    """Who reads an open route: the user a valid bearer token names, else None (a missing or
    bad token reads as anonymous). Read from the header itself, not through the OAuth2 scheme,
    so an open route stays keyed by address for the rate limiter."""
    header = connection.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return await app_services(connection).auth.authenticate(token.strip())
    except Unauthorized:
        return None


def sees_private_fields(reader: User | None, user_id: int) -> bool:
    """Whether `reader` may see a user's email and role: their own, or any as an admin."""
    return reader is not None and (reader.id == user_id or reader.is_admin)


Viewer = Annotated[User | None, Depends(viewer)]

# The IETF draft sends the key as a quoted Structured Field string; a bare token is accepted too.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r'^(?:"[!#-~]{1,255}"|[!#-~]{1,255})$',
        description="Makes the POST safe to retry: a repeat within 24 h replays the first answer.",
    ),
]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="ETag(s) the change expects.")]
