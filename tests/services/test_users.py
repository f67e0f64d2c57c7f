"""UserService over the in-memory repository: the rules, the cache and the events it emits."""

from __future__ import annotations

from typing import Any

import pytest

from app.core.exceptions import Conflict, Forbidden, NotFound, PreconditionFailed
from app.core.security import PasswordHasher
from app.memory.invalidation import MemoryInvalidation
from app.memory.repository import MemoryRepository
from app.services.cache import TTLCache
from app.services.users import User, UserService


class Recorder:
    """Collects what the service publishes."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def __call__(self, topic: str, data: Any) -> None:
        self.events.append((topic, data))


@pytest.fixture
def published() -> Recorder:
    return Recorder()


@pytest.fixture
def service(published: Recorder) -> UserService:
    cache = TTLCache(name="users-test", ttl_seconds=60, max_entries=100)
    return UserService(
        MemoryRepository(),
        PasswordHasher(rounds=4),
        cache,
        invalidate=MemoryInvalidation(cache),
        publish=published,
    )


async def _user(service: UserService, email: str = "u@example.com") -> User:
    return await service.create(email=email, name="U", password="password123")


async def test_create_hashes_the_password_and_announces_no_secret(
    service: UserService, published: Recorder
) -> None:
    user = await _user(service)
    assert user.password_hash.startswith("$2b$04$")
    assert published.events == [("user.created", published.events[0][1])]
    announced = published.events[0][1]
    assert announced["id"] == user.id
    assert "password_hash" not in announced


async def test_reads_are_cached_and_writes_invalidate_them(service: UserService) -> None:
    user = await _user(service)
    await service.get(user.id)
    await service.get(user.id)
    assert service.cache.stats()["hits"] >= 1
    updated = await service.update(user.id, {"name": "New"}, actor=user)
    assert (await service.get(user.id)).name == "New"
    assert updated.version == 2


async def test_a_list_page_is_cached_until_a_write(service: UserService) -> None:
    first = await _user(service, "a@example.com")
    page = await service.list(limit=10)
    assert page.total == 1
    await _user(service, "b@example.com")
    assert (await service.list(limit=10)).total == 2
    assert next(u.id for u in (await service.list(limit=10)).items) == first.id


async def test_someone_else_may_not_change_an_account(service: UserService) -> None:
    owner = await _user(service, "owner@example.com")
    other = await _user(service, "other@example.com")
    with pytest.raises(Forbidden):
        await service.update(owner.id, {"name": "x"}, actor=other)
    with pytest.raises(Forbidden):
        await service.delete(owner.id, actor=other)


async def test_a_stale_version_changes_nothing(service: UserService) -> None:
    user = await _user(service)
    with pytest.raises(PreconditionFailed):
        await service.update(user.id, {"name": "x"}, actor=user, expected_versions={7})
    assert (await service.get(user.id)).name == "U"


async def test_emails_are_unique_in_any_letter_case(service: UserService) -> None:
    await _user(service, "same@example.com")
    with pytest.raises(Conflict):
        await _user(service, "SAME@example.com")


async def test_a_deleted_user_is_gone_and_its_id_is_not_reused(
    service: UserService, published: Recorder
) -> None:
    user = await _user(service)
    await service.delete(user.id, actor=user)
    with pytest.raises(NotFound):
        await service.get(user.id)
    assert published.events[-1] == ("user.deleted", {"id": user.id})
    assert (await _user(service, "next@example.com")).id == user.id + 1


async def test_ensure_admin_creates_once(service: UserService) -> None:
    first = await service.ensure_admin(email="admin@example.com", password="admin-password")
    again = await service.ensure_admin(email="admin@example.com", password="admin-password")
    assert first.id == again.id
    assert first.is_admin
