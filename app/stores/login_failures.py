"""The login-failure store's interface (`FailureBook`): consecutive failures per key and the
back-off they impose. `MemoryFailures` (app/services/login_throttle.py) or `RedisFailures`
(app/redis/login_throttle.py); the throttle's rules are in app/services/login_throttle.py.
"""

from __future__ import annotations

from typing import Protocol

MAX_BACKOFF_SECONDS = 300.0


FORGET_AFTER_SECONDS = 900.0


class FailureBook(Protocol):
    """Consecutive failures per key and the back-off they impose: this process's memory, or
    Redis, shared by every replica (so a guesser gets no fresh budget from another replica)."""

    async def state(self, key: str) -> tuple[bool, float]:
        """Whether `key` has failures on record, and the seconds its back-off has left."""
        ...

    async def fail(self, key: str) -> None:
        """Record one more failure of `key` (and start or lengthen its back-off)."""
        ...

    async def clear(self, key: str) -> None:
        """Forget `key`'s failures."""
        ...


def backoff_seconds(count: int, threshold: int) -> float:
    """How long the `count`-th consecutive failure makes the next attempt wait."""
    if count < threshold:
        return 0.0
    return min(MAX_BACKOFF_SECONDS, 2.0 ** (count - threshold))
