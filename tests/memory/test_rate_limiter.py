"""The GCRA rate limiter with a fake clock."""

from __future__ import annotations

import pytest

from app.memory.rate_limiter import MemoryRateLimiter
from tests.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


def test_a_full_burst_is_allowed_then_refused(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(5, 10, clock=clock)
    decisions = [limiter.hit("a") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.retry_after == 2  # one token every 10/5 s
    assert refused.reset_seconds == 10


def test_tokens_come_back_at_the_steady_rate(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(5, 10, clock=clock)
    for _ in range(5):
        limiter.hit("a")
    clock.now += 1.9
    assert not limiter.hit("a").allowed
    clock.now += 0.1
    decision = limiter.hit("a")
    assert decision.allowed
    assert decision.remaining == 0


def test_reset_counts_down_to_a_full_quota(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(100, 60, clock=clock)
    first = limiter.hit("a")
    assert (first.remaining, first.reset_seconds) == (99, 1)
    clock.now += 0.3  # half a token (one per 0.6 s) has come back: not yet a whole one
    second = limiter.hit("a")
    assert second.remaining == 98
    assert second.reset_seconds == 1
    clock.now += 60
    assert limiter.hit("a").remaining == 99


def test_keys_are_independent(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(1, 10, clock=clock)
    assert limiter.hit("a").allowed
    assert not limiter.hit("a").allowed
    assert limiter.hit("b").allowed


def test_idle_keys_are_dropped_after_a_window(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(3, 10, clock=clock)
    for key in ("a", "b", "c"):
        limiter.hit(key)
    assert len(limiter) == 3
    clock.now += 10
    limiter.hit("d")
    assert len(limiter) == 1


def test_dropping_an_idle_key_does_not_change_its_answer(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(3, 10, clock=clock)
    for _ in range(3):
        limiter.hit("a")
    clock.now += 10
    limiter.hit("z")  # drops "a"
    assert [limiter.hit("a").remaining for _ in range(3)] == [2, 1, 0]


def test_a_million_clients_cannot_grow_the_table_past_max_keys(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(10, 60, max_keys=1000, clock=clock)
    for i in range(100_000):
        limiter.hit(f"client-{i}")
    assert len(limiter) == 1000


def test_refused_requests_do_not_push_the_reset_further(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(2, 10, clock=clock)
    limiter.hit("a")
    limiter.hit("a")
    for _ in range(50):
        assert not limiter.hit("a").allowed
    clock.now += 5
    assert limiter.hit("a").allowed


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryRateLimiter(0, 10)
