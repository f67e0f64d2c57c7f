"""Logged-out tokens in memory: kept until they expire, and, written through the repository,
restored after a restart that keeps the accounts (a snapshot)."""

from __future__ import annotations

import asyncio

from app.memory.repository import MemoryRepository
from app.memory.revocations import REVOKED_TOKENS, MemoryRevocations


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_restored_process_keeps_the_logouts_its_repository_kept() -> None:
    repository = MemoryRepository()
    clock = Clock()
    first = MemoryRevocations(records=repository, clock=clock)
    assert await first.revoke("token-a", expires_at=2_000)
    assert await first.revoke("token-b", expires_at=1_500)
    assert await first.revoke("token-a", expires_at=2_000)  # twice: one record
    assert await repository.count(REVOKED_TOKENS.name) == 2

    # A restart: the repository comes back from its snapshot; the revocations are new.
    exported = await repository.export()
    restarted = MemoryRepository()
    clock.now = 1_600  # token-b has expired meanwhile
    second = MemoryRevocations(records=restarted, clock=clock)
    restarted.restore(exported["collections"])
    assert not await second.is_revoked("token-a")  # not before restore
    assert await second.restore() == 1
    assert await second.is_revoked("token-a")
    assert not await second.is_revoked("token-b")
    assert await restarted.count(REVOKED_TOKENS.name) == 1  # the expired one is gone


async def test_the_bound_purges_expired_records_too_and_refuses_past_it() -> None:
    repository = MemoryRepository()
    clock = Clock()
    revocations = MemoryRevocations(max_tokens=2, records=repository, clock=clock)
    assert await revocations.revoke("a", expires_at=1_100)
    assert await revocations.revoke("b", expires_at=5_000)
    assert not await revocations.revoke("c", expires_at=5_000)  # full, nothing expired
    clock.now = 1_200
    assert await revocations.revoke("c", expires_at=5_000)  # "a" expired and was purged
    assert not await revocations.is_revoked("a")
    assert await repository.count(REVOKED_TOKENS.name) == 2


async def test_concurrent_logouts_of_one_token_keep_one_record() -> None:
    repository = MemoryRepository()
    revocations = MemoryRevocations(records=repository)
    results = await asyncio.gather(*(revocations.revoke("same", 2**31) for _ in range(20)))
    assert all(results)
    assert await revocations.is_revoked("same")
    assert await repository.count(REVOKED_TOKENS.name) == 1
