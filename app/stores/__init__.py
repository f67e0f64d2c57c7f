"""Where state lives: one interface module per stateful seam, each with two backends, one in
this process and one in Redis (shared by every replica):

- records: `records.Repository`; `InMemoryRepository` (app/db/memory.py, made durable by
  app/db/journal.py and app/db/snapshots.py), `RedisRepository` (app/redis/repository.py);
- idempotency keys: `idempotency.KeyBackend`; `MemoryKeys` (app/services/idempotency.py),
  `RedisKeys` (app/redis/idempotency.py);
- events: `events.EventLog`; `MemoryEventLog` (app/services/events.py), `RedisEventLog`
  (app/redis/event_log.py);
- login failures: `login_failures.FailureBook`; `MemoryFailures`
  (app/services/login_throttle.py), `RedisFailures` (app/redis/login_throttle.py);
- scoring jobs: `jobs.JobStore`; `MemoryJobs` (app/services/scoring/service.py), `RedisJobs`
  (app/redis/jobs.py);
- logged-out tokens: `revocations.Revocations`; `TokenRevocations` (app/services/auth.py),
  `RedisRevocations` (app/redis/revocations.py);
- chat rooms: `chat_rooms.SharedRooms`; kept by the chat service itself in one process
  (app/services/chat.py), `RedisRooms` (app/redis/chat.py);
- cache invalidation: `invalidation.Invalidate`; `LocalInvalidation` (app/services/cache.py),
  `SharedInvalidation` (app/redis/invalidation.py).

Services depend on these interfaces; the backends in app/db and app/redis depend on them and on
app.core, never on a service (import-linter holds it: `[tool.importlinter]` in pyproject.toml).
app/container.py picks the backends from `APP_STORE`.
"""
