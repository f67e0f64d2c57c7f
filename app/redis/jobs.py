"""Scoring jobs in Redis: a job submitted on one replica is read on any other.

Each job is one key holding its JSON, rewritten at every progress step and expiring
`ttl_seconds` after its last update, so finished jobs go away by themselves. While a job runs,
its replica refreshes `job-alive:<id>` (a key with a short expiry) every couple of seconds: a
job still `running` without that key lost its replica, and whichever replica is asked reports
it failed, with the reason.

A finished job's result is a key of its own (the encoded JSON, with the same TTL), and an index
of every kept result (a sorted set by the time it was kept, and a hash of each one's size and
owner) lets one script keep the results within their bounds for every replica at once: past a
client's share, that client's oldest results go first; past the total or the count, anyone's.
"""

from __future__ import annotations

import math
import time

from app.redis.client import RedisClient
from app.stores.jobs import RESULTS_EVICTED, ResultBounds, ScoringJob

# KEYS: the index (sorted set), the sizes (hash). ARGV: the key prefix of results, the job id,
# its owner, the result, now (ms), the TTL (ms), the bounds: total bytes, bytes per owner, count.
# Returns how many results it evicted. Results of other jobs are addressed by the prefix: fine on
# one Redis or a Sentinel-managed primary (not on Redis Cluster, which this app does not use).
_KEEP_RESULT = """
local index, sizes = KEYS[1], KEYS[2]
local prefix, id, owner, result = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local max_total, max_owner, max_count = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local evicted = 0
local function forget(member, delete)
  redis.call('ZREM', index, member)
  redis.call('HDEL', sizes, member)
  if delete and redis.call('DEL', prefix .. member) == 1 then evicted = evicted + 1 end
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now - ttl)) do
  forget(member, false)  -- expired with its key already
end
forget(id, false)
redis.call('SET', prefix .. id, result, 'PX', ttl)
redis.call('ZADD', index, now, id)
redis.call('HSET', sizes, id, #result .. ' ' .. owner)
local entries, total, mine = {}, 0, 0
for i, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local size, who = string.match(redis.call('HGET', sizes, member) or '0 ', '^(%d+) (.*)$')
  size = tonumber(size)
  entries[i] = {member, size, who}
  total = total + size
  if who == owner then mine = mine + size end
end
local count = #entries
for _, entry in ipairs(entries) do
  if mine <= max_owner and total <= max_total and count <= max_count then break end
  local ours = entry[3] == owner
  if (ours and mine > max_owner) or total > max_total or count > max_count then
    forget(entry[1], true)
    total, count = total - entry[2], count - 1
    if ours then mine = mine - entry[2] end
  end
end
redis.call('PEXPIRE', index, ttl)
redis.call('PEXPIRE', sizes, ttl)
return evicted
"""


class RedisJobs:
    """The scoring `JobStore` kept in Redis."""

    def __init__(self, client: RedisClient, *, ttl_seconds: float, bounds: ResultBounds) -> None:
        self._client = client
        self._ttl_ms = max(1, math.ceil(ttl_seconds * 1000))
        self._bounds = bounds
        self._keep = client.script(_KEEP_RESULT)
        self._index = f"{client.prefix}job-results"
        self._sizes = f"{client.prefix}job-result-sizes"

    def _key(self, job_id: str) -> str:
        return f"{self._client.prefix}job:{job_id}"

    def _result_key(self, job_id: str) -> str:
        return f"{self._client.prefix}job-result:{job_id}"

    def _alive_key(self, job_id: str) -> str:
        return f"{self._client.prefix}job-alive:{job_id}"

    async def heartbeat(self, job_id: str, lease_seconds: float) -> None:
        """The runner is alive for `lease_seconds` more (a key that expires by itself)."""
        lease_ms = max(1, math.ceil(lease_seconds * 1000))
        await self._client.call(
            "jobs.heartbeat", lambda r: r.set(self._alive_key(job_id), b"1", px=lease_ms)
        )

    async def alive(self, job_id: str) -> bool:
        """Whether the runner's last heartbeat is within its lease."""
        found = await self._client.call(
            "jobs.alive", lambda r: r.exists(self._alive_key(job_id)), idempotent=True
        )
        return bool(found)

    async def save(self, job: ScoringJob) -> None:
        """Store the job's current state for the TTL."""
        raw = job.to_json()
        await self._client.call(
            "jobs.save", lambda r: r.set(self._key(job.id), raw, px=self._ttl_ms), durable=True
        )

    async def load(self, job_id: str) -> ScoringJob | None:
        """The job's latest state, or None if unknown or expired."""
        raw = await self._client.call(
            "jobs.load", lambda r: r.get(self._key(job_id)), idempotent=True
        )
        return ScoringJob.from_json(raw) if raw is not None else None

    async def keep_result(self, job_id: str, owner: str, result: bytes) -> None:
        """Keep `result` for the TTL, evicting the oldest results past the bounds."""
        bounds = self._bounds
        args = [
            self._result_key(""),
            job_id,
            owner,
            result,
            int(time.time() * 1000),
            self._ttl_ms,
            bounds.max_bytes,
            bounds.max_bytes_per_client,
            bounds.max_results,
        ]
        evicted = await self._client.call(
            "jobs.keep_result", lambda _: self._keep([self._index, self._sizes], args)
        )
        if evicted:
            RESULTS_EVICTED.inc(int(evicted))

    async def load_result(self, job_id: str) -> bytes | None:
        """The result, or None if there is none (expired, evicted, or never finished)."""
        raw = await self._client.call(
            "jobs.load_result", lambda r: r.get(self._result_key(job_id)), idempotent=True
        )
        return raw.encode() if isinstance(raw, str) else raw
