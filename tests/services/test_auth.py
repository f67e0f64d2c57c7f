"""AuthService: login answers, and tokens recognised only down to a live account."""

from __future__ import annotations

import pytest

from app.core.exceptions import Forbidden, Unauthorized
from app.core.security import PasswordHasher, TokenCodec
from app.db.memory import InMemoryRepository
from app.services.auth import AuthService
from app.services.cache import TTLCache
from app.services.users import UserService

SECRET = "a-test-signing-key-of-at-least-32-bytes!"


@pytest.fixture
def users() -> UserService:
    cache = TTLCache(name="auth-test", ttl_seconds=60, max_entries=100)
    return UserService(InMemoryRepository(), PasswordHasher(rounds=4), cache)


@pytest.fixture
def auth(users: UserService) -> AuthService:
    return AuthService(users, PasswordHasher(rounds=4), TokenCodec(SECRET, "HS256", 5))


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(
    users: UserService, auth: AuthService
) -> None:
    await users.create(email="a@example.com", name="A", password="password123")
    with pytest.raises(Unauthorized) as wrong:
        await auth.login("a@example.com", "not-the-password")
    with pytest.raises(Unauthorized) as unknown:
        await auth.login("nobody@example.com", "not-the-password")
    assert wrong.value.detail == unknown.value.detail
    assert wrong.value.headers["WWW-Authenticate"] == "Bearer"


async def test_a_token_names_its_user(users: UserService, auth: AuthService) -> None:
    user = await users.create(email="b@example.com", name="B", password="password123")
    issued = await auth.login("b@example.com", "password123")
    assert (await auth.authenticate(issued.token)).id == user.id


async def test_a_deactivated_account_cannot_log_in_or_use_its_token(
    users: UserService, auth: AuthService
) -> None:
    user = await users.create(email="c@example.com", name="C", password="password123")
    token = (await auth.login("c@example.com", "password123")).token
    await users.update(user.id, {"is_active": False}, actor=user)
    with pytest.raises(Forbidden):
        await auth.login("c@example.com", "password123")
    with pytest.raises(Unauthorized):
        await auth.authenticate(token)


async def test_missing_and_forged_tokens_are_refused(auth: AuthService) -> None:
    with pytest.raises(Unauthorized):
        await auth.authenticate(None)
    forged = TokenCodec("another-key-that-is-32-bytes-long!!", "HS256", 5).issue("1").token
    with pytest.raises(Unauthorized) as refused:
        await auth.authenticate(forged)
    assert "invalid_token" in refused.value.headers["WWW-Authenticate"]
