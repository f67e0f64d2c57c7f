"""A retry budget (as Envoy and gRPC keep one): retries may add at most `ratio` of the calls
made over the last `window_seconds`, plus a small `floor`, so that when a dependency is down
for everyone, retries cannot multiply the load on it: at 10%, an outage costs at most 1.1
calls per call, not 3.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RetryBudget:
    """Counts calls and retries in one-second buckets over a sliding window."""

    def __init__(
        self,
        *,
        ratio: float = 0.1,
        floor: int = 3,
        window_seconds: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= ratio <= 1 or floor < 0 or window_seconds < 1:
            raise ValueError("need 0 <= ratio <= 1, floor >= 0 and window_seconds >= 1")
        self.ratio = ratio
        self.floor = floor
        self.window = window_seconds
        self._clock = clock
        # [second, calls, retries], oldest first.
        self._buckets: deque[list[int]] = deque()

    def _bucket(self) -> list[int]:
        now = int(self._clock())
        while self._buckets and self._buckets[0][0] <= now - self.window:
            self._buckets.popleft()
        if not self._buckets or self._buckets[-1][0] != now:
            self._buckets.append([now, 0, 0])
        return self._buckets[-1]

    def called(self) -> None:
        """Count a first attempt."""
        self._bucket()[1] += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget: True if there was room (and it is counted)."""
        bucket = self._bucket()
        calls = sum(b[1] for b in self._buckets)
        retries = sum(b[2] for b in self._buckets)
        if retries >= self.floor + self.ratio * calls:
            return False
        bucket[2] += 1
        return True

    def left(self) -> int:
        """Retries the budget would allow now."""
        self._bucket()
        calls = sum(b[1] for b in self._buckets)
        retries = sum(b[2] for b in self._buckets)
        return max(0, int(self.floor + self.ratio * calls) - retries)
