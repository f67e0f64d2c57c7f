"""Login failures in this process (`MemoryFailures`); `RedisFailures`
(app/redis/login_throttle.py) is its twin for every replica, and app/services/login_throttle.py
holds the rules."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.stores.login_failures import FORGET_AFTER_SECONDS, backoff_seconds


@dataclass(slots=True)
class _Failures:
    count: int
    blocked_until: float
    last: float


class MemoryFailures:
    """`FailureBook` in this process: in the order of the last failure, forgotten when old, the
    oldest first when full."""

    def __init__(
        self, threshold: int, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._threshold = threshold
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        self._forget_old()
        return len(self._entries)

    async def state(self, key: str) -> tuple[bool, float]:
        """Whether `key` failed lately, and the seconds left of its back-off."""
        self._forget_old()
        failures = self._entries.get(key)
        if failures is None:
            return False, 0.0
        return True, failures.blocked_until - self._clock()

    async def fail(self, key: str) -> None:
        """One more failure of `key`."""
        now = self._clock()
        failures = self._entries.pop(key, None) or _Failures(0, 0.0, now)
        failures.count += 1
        failures.last = now
        delay = backoff_seconds(failures.count, self._threshold)
        if delay:
            failures.blocked_until = now + delay
        self._entries[key] = failures
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        self._forget_old()

    async def clear(self, key: str) -> None:
        """Forget `key`."""
        self._entries.pop(key, None)

    def _forget_old(self) -> None:
        horizon = self._clock() - FORGET_AFTER_SECONDS
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.last > horizon:
                return
            self._entries.popitem(last=False)
