"""AuthService: login answers, and tokens recognised only down to a live account."""

from __future__ import annotations

import pytest

from app.container import memory_login_throttle
from app.core.exceptions import Forbidden, TooManyRequests, Unauthorized, UnprocessableContent
from app.core.security import PasswordHasher, TokenCodec
from app.memory.invalidation import MemoryInvalidation
from app.memory.repository import MemoryRepository
from app.memory.revocations import MemoryRevocations
from app.services.auth import AuthService
from app.services.cache import TTLCache
from app.services.users import UserService
from tests.fakes import FakeClock

SECRET = "a-test-signing-key-of-at-least-32-bytes!"


@pytest.fixture
def users() -> UserService:
    cache = TTLCache(name="auth-test", ttl_seconds=60, max_entries=100)
    return UserService(
        MemoryRepository(), PasswordHasher(rounds=4), cache, invalidate=MemoryInvalidation(cache)
    )


@pytest.fixture
def auth(users: UserService) -> AuthService:
    return AuthService(
        users,
        PasswordHasher(rounds=4),
        TokenCodec(SECRET, "HS256", 5),
        revocations=MemoryRevocations(),
    )


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
    forged = TokenCodec("another-key-that-is-32-bytes-long!!", "HS256", 5).issue("1", "x").token
    with pytest.raises(Unauthorized) as refused:
        await auth.authenticate(forged)
    assert "invalid_token" in refused.value.headers["WWW-Authenticate"]


async def test_a_new_password_ends_earlier_tokens_and_needs_the_current_one(
    users: UserService, auth: AuthService
) -> None:
    user = await users.create(email="d@example.com", name="D", password="password123")
    token = (await auth.login("d@example.com", "password123")).token
    with pytest.raises(UnprocessableContent):
        await users.update(user.id, {"password": "new-password-1"}, actor=user)
    with pytest.raises(Forbidden):
        await users.update(
            user.id, {"password": "new-password-1"}, actor=user, current_password="wrong-one"
        )
    await users.update(
        user.id, {"password": "new-password-1"}, actor=user, current_password="password123"
    )
    with pytest.raises(Unauthorized):
        await auth.authenticate(token)
    fresh = (await auth.login("d@example.com", "new-password-1")).token
    assert (await auth.authenticate(fresh)).id == user.id


async def test_deactivate_then_reactivate_does_not_revive_old_tokens(
    users: UserService, auth: AuthService
) -> None:
    admin = await users.create(
        email="adm@example.com", name="A", password="password123", role="admin"
    )
    user = await users.create(email="e@example.com", name="E", password="password123")
    token = (await auth.login("e@example.com", "password123")).token
    await users.update(user.id, {"is_active": False}, actor=admin)
    await users.update(user.id, {"is_active": True}, actor=admin)
    with pytest.raises(Unauthorized):
        await auth.authenticate(token)


async def test_a_token_never_acts_as_another_user_with_the_same_id(auth: AuthService) -> None:
    # Two stores, as before and after a restart without a snapshot: both give out id 1.
    before = UserService(
        MemoryRepository(),
        PasswordHasher(rounds=4),
        cache_b := TTLCache(name="b", ttl_seconds=60, max_entries=10),
        invalidate=MemoryInvalidation(cache_b),
    )
    after = UserService(
        MemoryRepository(),
        PasswordHasher(rounds=4),
        cache_a := TTLCache(name="a", ttl_seconds=60, max_entries=10),
        invalidate=MemoryInvalidation(cache_a),
    )
    codec = TokenCodec(SECRET, "HS256", 5)
    old = await before.create(email="old@example.com", name="Old", password="password123")
    token = (
        await AuthService(
            before, PasswordHasher(rounds=4), codec, revocations=MemoryRevocations()
        ).login("old@example.com", "password123")
    ).token
    new = await after.create(email="new@example.com", name="New", password="password123")
    assert old.id == new.id
    with pytest.raises(Unauthorized):
        await AuthService(
            after, PasswordHasher(rounds=4), codec, revocations=MemoryRevocations()
        ).authenticate(token)


async def test_logout_revokes_the_token_and_everywhere_revokes_all(
    users: UserService, auth: AuthService
) -> None:
    await users.create(email="f@example.com", name="F", password="password123")
    first = (await auth.login("f@example.com", "password123")).token
    second = (await auth.login("f@example.com", "password123")).token
    await auth.logout(first)
    with pytest.raises(Unauthorized):
        await auth.authenticate(first)
    assert (await auth.authenticate(second)).email == "f@example.com"
    third = (await auth.login("f@example.com", "password123")).token
    await auth.logout(second, everywhere=True)
    for token in (second, third):
        with pytest.raises(Unauthorized):
            await auth.authenticate(token)


async def test_a_full_revocation_list_revokes_every_token_of_the_user(users: UserService) -> None:
    auth = AuthService(
        users,
        PasswordHasher(rounds=4),
        TokenCodec(SECRET, "HS256", 5),
        revocations=MemoryRevocations(max_tokens=0),
    )
    await users.create(email="g@example.com", name="G", password="password123")
    first = (await auth.login("g@example.com", "password123")).token
    second = (await auth.login("g@example.com", "password123")).token
    await auth.logout(first)
    for token in (first, second):
        with pytest.raises(Unauthorized):
            await auth.authenticate(token)


async def test_guesses_at_one_account_are_throttled_and_backed_off(users: UserService) -> None:
    clock = FakeClock()
    throttle = memory_login_throttle(
        attempts_per_minute=100, failures_before_backoff=3, clock=clock
    )
    auth = AuthService(
        users,
        PasswordHasher(rounds=4),
        TokenCodec(SECRET, "HS256", 5),
        throttle=throttle,
        revocations=MemoryRevocations(),
    )
    await users.create(email="h@example.com", name="H", password="password123")
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await auth.login("h@example.com", "guess", client_address="10.0.0.1")
    # The failing address now waits, even with the right password...
    with pytest.raises(TooManyRequests) as waiting:
        await auth.login("h@example.com", "password123", client_address="10.0.0.1")
    assert waiting.value.headers["Retry-After"] == "1"
    # ...and so does another address once it has failed there too (a botnet slows together),
    with pytest.raises(Unauthorized):
        await auth.login("h@example.com", "guess", client_address="10.0.0.3")
    with pytest.raises(TooManyRequests):
        await auth.login("h@example.com", "guess", client_address="10.0.0.3")
    # ...but an address that has not failed is never locked out by someone else's guesses.
    assert await auth.login("h@example.com", "password123", client_address="10.0.0.2")
    clock.now += 1.5
    assert await auth.login("H@example.com", "password123", client_address="10.0.0.1")


async def test_failures_are_forgotten_and_names_too_long_are_not_remembered(
    users: UserService,
) -> None:
    clock = FakeClock()
    throttle = memory_login_throttle(
        attempts_per_minute=100, failures_before_backoff=3, clock=clock
    )
    auth = AuthService(
        users,
        PasswordHasher(rounds=4),
        TokenCodec(SECRET, "HS256", 5),
        throttle=throttle,
        revocations=MemoryRevocations(),
    )
    with pytest.raises(Unauthorized):
        await auth.login("x" * 255 + "@example.com", "guess", client_address="10.0.0.1")
    assert throttle.entries() == 0
    with pytest.raises(Unauthorized):
        await auth.login("nobody@example.com", "guess", client_address="10.0.0.1")
    assert throttle.entries() == 2  # the account, and the address at the account
    clock.now += 901
    assert throttle.entries() == 0


async def test_one_address_gets_few_attempts_at_one_account(users: UserService) -> None:
    throttle = memory_login_throttle(
        attempts_per_minute=2, failures_before_backoff=100, clock=FakeClock()
    )
    auth = AuthService(
        users,
        PasswordHasher(rounds=4),
        TokenCodec(SECRET, "HS256", 5),
        throttle=throttle,
        revocations=MemoryRevocations(),
    )
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await auth.login("admin@example.com", "guess", client_address="10.0.0.9")
    with pytest.raises(TooManyRequests):
        await auth.login("admin@example.com", "guess", client_address="10.0.0.9")
    # Another account from that address, or that account from another address, is untouched.
    with pytest.raises(Unauthorized):
        await auth.login("other@example.com", "guess", client_address="10.0.0.9")
    with pytest.raises(Unauthorized):
        await auth.login("admin@example.com", "guess", client_address="10.0.0.10")
