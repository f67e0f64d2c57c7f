"""Where state lives: one interface module per stateful seam here, and two backends that mirror
each other module for module: app/memory (this process) and app/redis (shared by every replica).

| seam | interface | app/memory | app/redis |
|---|---|---|---|
| records | records.Repository | repository.MemoryRepository | repository.RedisRepository |
| request quotas | quotas.QuotaLimiter | rate_limiter.MemoryRateLimiter | rate_limiter.RedisRateLimiter |
| idempotency keys | idempotency.KeyBackend | idempotency.MemoryKeys | idempotency.RedisKeys |
| events | events.EventLog | event_log.MemoryEventLog | event_log.RedisEventLog |
| login failures | login_failures.FailureBook | login_throttle.MemoryFailures | login_throttle.RedisFailures |
| scoring jobs | jobs.JobStore | jobs.MemoryJobs | jobs.RedisJobs |
| logged-out tokens | revocations.Revocations | revocations.MemoryRevocations | revocations.RedisRevocations |
| cache invalidation | invalidation.Invalidate | invalidation.MemoryInvalidation | invalidation.RedisInvalidation |
| chat rooms | chat_rooms.SharedRooms | (rooms of one process: the chat service's own) | chat.RedisRooms |
| the fleet's reports | fleet.Fleet | fleet.MemoryFleet | fleet.RedisFleet |

The memory records are made durable by app/memory/journal.py and app/memory/snapshots.py; Redis
by its own persistence. Services depend on these interfaces only, and the backends on them and on
app.core, never on a service: import-linter holds both (`[tool.importlinter]` in pyproject.toml).
app/container.py picks the backends from `APP_STORE`.
"""  # noqa: E501 - the table reads better whole
