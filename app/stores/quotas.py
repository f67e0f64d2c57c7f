"""The request-quota store's interface (`QuotaLimiter`) and what it decides: GCRA, the token
bucket kept as one number per client (app/memory/rate_limiter.py says why). `MemoryRateLimiter`
(app/memory/rate_limiter.py) in this process, `RedisRateLimiter` (app/redis/rate_limiter.py)
across replicas; the chain's rate-limit layer and the login throttle use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """The verdict for one request and what the rate-limit headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the quota is whole again
    retry_after: int  # until the next request would be allowed (0 when allowed)


def gcra_decision(quota: int, window: float, ahead: float, allowed: bool) -> RateLimitDecision:
    """The verdict and header values from how far the client's TAT is ahead of now.

    `ahead` is the new TAT minus now when the request was allowed, and the current TAT minus
    now when it was refused. Shared by every backend, so the fields read the same everywhere.
    """
    interval = window / quota
    if not allowed:
        return RateLimitDecision(
            allowed=False,
            limit=quota,
            remaining=0,
            reset_seconds=math.ceil(ahead),
            retry_after=max(1, math.ceil(ahead + interval - window)),
        )
    remaining = math.floor((window - ahead) / interval + 1e-9)
    return RateLimitDecision(
        allowed=True,
        limit=quota,
        remaining=max(0, remaining),
        reset_seconds=math.ceil(ahead),
        retry_after=0,
    )


class QuotaLimiter(Protocol):
    """What the rate-limit middleware needs, whichever store keeps the buckets."""

    quota: int
    window: float

    async def acquire(self, key: str) -> RateLimitDecision:
        """Count one request from `key` and decide whether it may pass."""
        ...


class LocalQuota(Protocol):
    """A quota decided in this process without waiting (`MemoryRateLimiter`): what a shared
    limiter falls back to while its store fails."""

    def hit(self, key: str) -> RateLimitDecision:
        """Count one request from `key` and decide whether it may pass."""
        ...
