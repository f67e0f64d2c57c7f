"""A per-key rate limiter: GCRA, the token bucket done with one number per client.

Why GCRA (the generic cell rate algorithm): it is an exact token bucket — a client may burst the
whole quota at once, then gets one request every `window / quota` seconds — yet it keeps a
single float per client (the "theoretical arrival time", TAT) instead of a log of timestamps,
and it has no fixed-window edge where a client could send twice the quota in a moment.

Memory is bounded two ways. A client idle for a whole window has a full bucket again, which is
exactly what an unknown client gets, so its entry can be dropped without changing any answer;
entries are kept in least-recently-used order, so those idle entries are always at the front and
are dropped in O(1) as requests arrive. And `max_keys` caps the table outright (the least
recently seen client is forgotten first), so a million spoofed clients cannot grow it further.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.stores.quotas import RateLimitDecision, gcra_decision


@dataclass(slots=True)
class _Bucket:
    tat: float  # theoretical arrival time: when the bucket will be full again
    last_seen: float


class MemoryRateLimiter:
    """`quota` requests per `window_seconds` per key, bursts allowed up to the quota, in this
    process's memory."""

    def __init__(
        self,
        quota: int,
        window_seconds: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if quota < 1 or window_seconds <= 0 or max_keys < 1:
            raise ValueError("quota, window_seconds and max_keys must be positive")
        self.quota = quota
        self.window = float(window_seconds)
        self.max_keys = max_keys
        self._interval = self.window / quota
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _drop_idle(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if now - oldest.last_seen < self.window and len(buckets) < self.max_keys:
                return
            buckets.popitem(last=False)

    def hit(self, key: str) -> RateLimitDecision:
        """Count one request from `key` and decide whether it may pass."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._drop_idle(now)
            tat = now
        else:
            self._buckets.move_to_end(key)
            tat = max(bucket.tat, now)
        new_tat = tat + self._interval
        # A tiny tolerance keeps float rounding from refusing the last request of a burst.
        if new_tat - now > self.window + 1e-9:
            if bucket is not None:
                bucket.last_seen = now
            return gcra_decision(self.quota, self.window, tat - now, allowed=False)
        if bucket is None:
            self._buckets[key] = _Bucket(tat=new_tat, last_seen=now)
        else:
            bucket.tat, bucket.last_seen = new_tat, now
        return gcra_decision(self.quota, self.window, new_tat - now, allowed=True)

    async def acquire(self, key: str) -> RateLimitDecision:
        """`hit`, as the `QuotaLimiter` protocol asks (nothing here waits)."""
        return self.hit(key)
