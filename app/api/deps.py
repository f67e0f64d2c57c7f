"""Dependencies, declared once as `Annotated` aliases so route signatures read like sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request, WebSocket
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from app.core.clients import ClientIdentifier
from app.core.config import Settings
from app.core.lifecycle import Lifecycle
from app.middleware.resilience import BreakerRegistry
from app.services.auth import AuthService
from app.services.chat import ChatManager
from app.services.container import AppServices
from app.services.events import EventBus
from app.services.idempotency import IdempotencyStore
from app.services.scoring_service import ScoringService
from app.services.users import User, UserService

API_PREFIX = "/api/v1"
TOKEN_URL = f"{API_PREFIX}/auth/token"

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


# Dependencies are `async def` although none of them awaits: FastAPI runs plain `def`
# dependencies in the thread pool, a thread hop per dependency per request for nothing.


def _services(request: Request) -> AppServices:
    return request.app.state.services


async def _users(request: Request) -> UserService:
    return _services(request).users


async def _auth(request: Request) -> AuthService:
    return _services(request).auth


async def _idempotency(request: Request) -> IdempotencyStore:
    return _services(request).idempotency


async def _scoring(request: Request) -> ScoringService:
    return _services(request).scoring


async def _bus(request: Request) -> EventBus:
    return _services(request).bus


async def _chat(websocket: WebSocket) -> ChatManager:
    return websocket.app.state.services.chat


async def _client_key(request: Request) -> str:
    identifier: ClientIdentifier = request.app.state.client_identifier
    return identifier.client_key(request.scope)


async def _settings(connection: HTTPConnection) -> Settings:
    return connection.app.state.settings


async def _lifecycle(connection: HTTPConnection) -> Lifecycle:
    # HTTPConnection: usable by WebSocket routes as well as HTTP ones.
    return connection.app.state.lifecycle


async def _breakers(request: Request) -> BreakerRegistry:
    return request.app.state.breakers


async def _services_or_none(request: Request) -> AppServices | None:
    # Probes may be asked before the lifespan has built the services.
    return getattr(request.app.state, "services", None)


SettingsDep = Annotated[Settings, Depends(_settings)]
LifecycleDep = Annotated[Lifecycle, Depends(_lifecycle)]
BreakersDep = Annotated[BreakerRegistry, Depends(_breakers)]
MaybeServices = Annotated[AppServices | None, Depends(_services_or_none)]
UserServiceDep = Annotated[UserService, Depends(_users)]
AuthServiceDep = Annotated[AuthService, Depends(_auth)]
IdempotencyDep = Annotated[IdempotencyStore, Depends(_idempotency)]
ScoringServiceDep = Annotated[ScoringService, Depends(_scoring)]
EventBusDep = Annotated[EventBus, Depends(_bus)]
ChatDep = Annotated[ChatManager, Depends(_chat)]
ClientKey = Annotated[str, Depends(_client_key)]


async def _current_user(
    auth: AuthServiceDep, token: Annotated[str | None, Depends(_bearer)]
) -> User:
    return await auth.authenticate(token)


CurrentUser = Annotated[User, Depends(_current_user)]

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
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", description="304 if current.")]
