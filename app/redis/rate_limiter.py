"""The GCRA rate limiter on Redis: one quota per client across every replica.

The whole decision is one Lua script, so a client's bucket is read and moved in one atomic step
however many replicas it hits at once, and time comes from Redis (`TIME`), so replicas whose
clocks differ still agree. The bucket is one key holding the TAT, expiring when the bucket would
be full again: an idle client costs nothing.

When Redis cannot be reached, the limiter falls back to this process's in-memory limiter for
`fallback_seconds` before trying Redis again: clients stay limited (per replica, so by up to the
replica count times the quota) and no request waits on a dead Redis just to be counted.
"""

from __future__ import annotations

import time

from prometheus_client import Counter

from app.core.exceptions import StoreUnavailable
from app.core.logging import get_logger
from app.redis.client import RedisClient
from app.stores.quotas import LocalQuota, RateLimitDecision, gcra_decision

log = get_logger(__name__)

FALLBACK_DECISIONS = Counter(
    "rate_limit_fallback_decisions_total",
    "Rate-limit decisions made in process memory because Redis could not be reached.",
)

# KEYS[1]: the client's bucket. ARGV: seconds per request (window / quota), window seconds.
# Returns {1, new TAT - now} when allowed, {0, TAT - now} when refused (as strings: floats).
_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local interval, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > window + 1e-9 then return {0, tostring(tat - now)} end
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX',
  math.ceil((new_tat - now) * 1000) + 1)
return {1, tostring(new_tat - now)}
"""


class RedisRateLimiter:
    """`quota` requests per `window_seconds` per key, the buckets in Redis."""

    def __init__(
        self,
        client: RedisClient,
        quota: int,
        window_seconds: float,
        *,
        fallback: LocalQuota,
        fallback_seconds: float = 1.0,
        name: str = "ratelimit",
    ) -> None:
        if quota < 1 or window_seconds <= 0:
            raise ValueError("quota and window_seconds must be positive")
        self.quota = quota
        self.window = float(window_seconds)
        self._client = client
        self._script = client.script(_GCRA)
        self._args = [repr(self.window / quota), repr(self.window)]
        self._fallback = fallback
        self._fallback_seconds = fallback_seconds
        self._fallback_until = 0.0
        self._key_prefix = f"{client.prefix}{name}:"

    async def acquire(self, key: str) -> RateLimitDecision:
        """Count one request from `key` and decide, in Redis (or in memory while it is out)."""
        if time.monotonic() < self._fallback_until:
            FALLBACK_DECISIONS.inc()
            return self._fallback.hit(key)
        bucket = self._key_prefix + key
        try:
            allowed, ahead = await self._client.call(
                "rate_limit", lambda r: self._script([bucket], self._args)
            )
        except StoreUnavailable:
            self._fallback_until = time.monotonic() + self._fallback_seconds
            log.warning("rate_limit_fallback", seconds=self._fallback_seconds)
            FALLBACK_DECISIONS.inc()
            return self._fallback.hit(key)
        return gcra_decision(self.quota, self.window, float(ahead), allowed=bool(allowed))
