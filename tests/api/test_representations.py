"""Users' JSON rendered once per version, in the API layer: kept bytes follow every write and
never serve another user's content."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from app.api.representations import user_json
from app.core.security import PasswordHasher
from app.http.representations import RepresentationCache
from app.memory.invalidation import MemoryInvalidation
from app.memory.repository import MemoryRepository
from app.schemas.users import public_view
from app.services.cache import TTLCache
from app.services.users import UserService


@pytest.fixture
def service() -> UserService:
    cache = TTLCache(name="users-test", ttl_seconds=60, max_entries=100)
    return UserService(
        MemoryRepository(), PasswordHasher(rounds=4), cache, invalidate=MemoryInvalidation(cache)
    )


async def test_the_public_json_is_rendered_once_per_version_and_follows_every_write(
    service: UserService,
) -> None:
    rendered = RepresentationCache(16)
    user = await service.create(email="u@example.com", name="U", password="password123")
    first = user_json(rendered, await service.get(user.id))
    assert json.loads(first) == public_view(user)
    assert user_json(rendered, await service.get(user.id)) is first  # kept, not rendered again
    await service.update(user.id, {"name": "Renamed"}, actor=user)
    renamed = json.loads(user_json(rendered, await service.get(user.id)))
    assert renamed["name"] == "Renamed"
    assert b"password" not in first
    assert b"$2b$" not in first
    full = json.loads(user_json(rendered, await service.get(user.id), full=True))
    assert full["email"] == "u@example.com"
    assert "email" not in renamed


async def test_a_reused_id_and_version_never_serve_another_users_json(
    service: UserService,
) -> None:
    # A store emptied and refilled (a Redis FLUSHALL) can hand out id 1 at version 1 again.
    rendered = RepresentationCache(16)
    ada = await service.create(email="ada@example.com", name="Ada", password="password123")
    user_json(rendered, ada)
    other = dataclasses.replace(ada, name="Someone else", updated_at=datetime.now(UTC))
    assert json.loads(user_json(rendered, other))["name"] == "Someone else"
