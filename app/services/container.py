"""The long-lived objects of a running app, built by the lifespan and reached through deps."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.config import Settings
from app.core.security import PasswordHasher, TokenCodec
from app.db.base import Repository
from app.db.memory import InMemoryRepository
from app.middleware.resilience import BreakerRegistry, BreakerState
from app.services.auth import AuthService
from app.services.health import Degraded, HealthChecker
from app.services.idempotency import IdempotencyStore
from app.services.users import UserService


@dataclass(frozen=True, slots=True)
class AppServices:
    """Everything a request handler may need, wired once per app."""

    repository: Repository
    users: UserService
    auth: AuthService
    idempotency: IdempotencyStore
    health: HealthChecker


def _health_checks(repository: Repository, breakers: BreakerRegistry) -> HealthChecker:
    checker = HealthChecker(timeout_seconds=1.0)

    async def repository_check() -> dict[str, int]:
        # Takes the collection lock: a repository wedged by a stuck transaction fails here.
        return {"users": await repository.count("users")}

    async def breakers_check() -> object:
        states = {b.name: str(b.state) for b in breakers.all()}
        open_ = sorted(name for name, state in states.items() if state != BreakerState.CLOSED)
        return Degraded(states) if open_ else states

    checker.register("repository", repository_check, critical=True)
    checker.register("breakers", breakers_check, critical=False)
    return checker


def build_services(
    settings: Settings, tokens: TokenCodec, breakers: BreakerRegistry
) -> AppServices:
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
        health=_health_checks(repository, breakers),
    )
