"""The long-lived objects of a running app, built by the lifespan and reached through deps."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.config import Settings
from app.core.security import PasswordHasher, TokenCodec
from app.db.base import Repository
from app.db.memory import InMemoryRepository
from app.services.auth import AuthService
from app.services.idempotency import IdempotencyStore
from app.services.users import UserService


@dataclass(frozen=True, slots=True)
class AppServices:
    """Everything a request handler may need, wired once per app."""

    repository: Repository
    users: UserService
    auth: AuthService
    idempotency: IdempotencyStore


def build_services(settings: Settings, tokens: TokenCodec) -> AppServices:
    """Wire the repository and services from settings."""
    repository = InMemoryRepository()
    hasher = PasswordHasher(rounds=settings.bcrypt_rounds)
    users = UserService(repository, hasher)
    return AppServices(
        repository=repository,
        users=users,
        auth=AuthService(users, hasher, tokens),
        idempotency=IdempotencyStore(
            ttl_seconds=settings.idempotency_ttl_seconds, max_keys=settings.idempotency_max_keys
        ),
    )
