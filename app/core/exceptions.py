"""Every exception the app raises on purpose, in one tree, and the table of problem types.

    Exception
    ├── AppError                     an answer to the client: status + problem type + detail
    │   ├── BadRequest               400
    │   ├── Unauthorized             401, with a Bearer challenge
    │   ├── Forbidden                403
    │   ├── NotFound                 404
    │   ├── Gone                     410 (a scoring job's result evicted to bound memory)
    │   ├── Conflict                 409
    │   │   └── IdempotencyKeyInFlight
    │   ├── PreconditionFailed       412
    │   ├── TooManyRequests          429 + Retry-After (login throttling)
    │   ├── UnprocessableContent     422
    │   │   ├── ValidationFailed     422 with `errors` (validation outside FastAPI)
    │   │   └── IdempotencyKeyReused
    │   ├── WorkerCrashed            500 (a process-pool worker died; retrying is safe)  *
    │   ├── SimulatedFailure         500 (the flaky demo's simulated upstream)
    │   ├── ServiceUnavailable       503
    │   │   ├── Overloaded           503 + Retry-After: capacity is full, shed on purpose
    │   │   ├── ShuttingDown         503 + Retry-After: this instance is draining
    │   │   ├── BreakerOpen          503 + Retry-After: a dependency's breaker refused
    │   │   └── StoreUnavailable     503 + Retry-After: the store failed
    │   │       ├── RedisUnavailable     (app/redis/client.py) Redis did not answer
    │   │       └── JournalUnavailable   (app/memory/journal.py) the journal cannot be written
    │   ├── TaskTimedOut             504 (a CPU task overran)                            *
    │   ├── DeadlineExceeded         504: too little of the request's time was left
    │   └── ReplayedError            an earlier answer (4xx) replayed for an Idempotency-Key
    ├── StartupRefused               the service will not start as configured (a clear message)
    │   └── SnapshotError            (app/memory/snapshots.py) the snapshot is unusable
    ├── SettingsError                an environment variable holds an invalid setting
    ├── CircuitOpenError             a breaker refused a call (the caller answers 503)
    ├── InvalidTokenError            a token is malformed, expired or not ours (the caller: 401)
    ├── InjectedFault                (app/core/faults.py) a drill's outage (ConnectionError)
    ├── NotReplicated                (app/redis/client.py) too few replicas (RedisError)
    ├── JournalCorrupt               (app/memory/journal.py) a bad journal line (ValueError)
    ├── PayloadTooLarge              (app/middleware/body_limit.py) 413 (HTTPException)
    ├── ChatJoinRefused              a chat join refused (the route closes the socket)
    │   ├── NameTaken                1008: a connected member holds the name
    │   │   └── NameHeldBriefly      1013: its holder is gone and the name is coming back
    │   └── RoomFull                 1013
    └── RepositoryError              storage said no; services turn these into AppErrors
        ├── RecordNotFound
        ├── DuplicateKey
        ├── VersionMismatch
        └── UnknownCollection

* a dependency failure: the only answers a route group's circuit breaker counts
(`dependency_failure`); a dependency's own breaker counts the failures its pipeline sees.
Nothing a client can cause with its own input is one, so no client can open a breaker for
everyone else. The classes defined elsewhere are named with their module; a test holds this
tree to the code.

This module imports nothing of the web stack: services raise these errors, worker processes
raise and pickle them, and `app/api/errors.py` turns them into problem details.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from http import HTTPStatus
from typing import Any


class ProblemType(StrEnum):
    """Every problem `type` the app sends. `about:blank` means "the status code says it all"."""

    BLANK = "about:blank"
    UNAUTHORIZED = "/problems/unauthorized"
    FORBIDDEN = "/problems/forbidden"
    NOT_FOUND = "/problems/not-found"
    RESULT_EVICTED = "/problems/result-evicted"
    CONFLICT = "/problems/conflict"
    PRECONDITION_FAILED = "/problems/precondition-failed"
    UNPROCESSABLE = "/problems/unprocessable"
    VALIDATION = "/problems/validation"
    IDEMPOTENCY_KEY_REUSED = "/problems/idempotency-key-reused"
    IDEMPOTENCY_KEY_IN_FLIGHT = "/problems/idempotency-key-in-flight"
    RATE_LIMITED = "/problems/rate-limited"
    TIMEOUT = "/problems/timeout"
    TASK_TIMEOUT = "/problems/task-timeout"
    CIRCUIT_OPEN = "/problems/circuit-open"
    OVERLOADED = "/problems/overloaded"
    UNAVAILABLE = "/problems/unavailable"
    STORE_UNAVAILABLE = "/problems/store-unavailable"
    WORKER_CRASHED = "/problems/worker-crashed"
    SIMULATED_FAILURE = "/problems/simulated-failure"


class AppError(Exception):
    """Base of the errors our code raises on purpose; each class maps to one status and type."""

    status: int = 500
    type: ProblemType = ProblemType.BLANK
    # True when a dependency (the process pool, a store) failed, rather than the request.
    dependency_failure: bool = False

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})

    @property
    def title(self) -> str:
        """The short, fixed summary of this problem type."""
        return HTTPStatus(self.status).phrase


class BadRequest(AppError):
    """The request is syntactically fine but cannot be acted on."""

    status = 400


class Unauthorized(AppError):
    """No valid credentials; the answer invites a Bearer token."""

    status = 401
    type = ProblemType.UNAUTHORIZED

    def __init__(self, detail: str, *, invalid_token: bool = False) -> None:
        challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(AppError):
    """Authenticated, but not allowed to do this."""

    status = 403
    type = ProblemType.FORBIDDEN


class NotFound(AppError):
    """The addressed resource does not exist."""

    status = 404
    type = ProblemType.NOT_FOUND


class Gone(AppError):
    """The resource existed, but what was asked for is no longer kept (an evicted result)."""

    status = 410
    type = ProblemType.RESULT_EVICTED


class Conflict(AppError):
    """The request conflicts with the current state (a taken email, a request in flight)."""

    status = 409
    type = ProblemType.CONFLICT


class IdempotencyKeyInFlight(Conflict):
    """The first request with this Idempotency-Key has not finished yet."""

    type = ProblemType.IDEMPOTENCY_KEY_IN_FLIGHT


class PreconditionFailed(AppError):
    """An `If-Match` precondition did not hold; nothing was changed."""

    status = 412
    type = ProblemType.PRECONDITION_FAILED


class TooManyRequests(AppError):
    """Too many attempts from this client (or at this account) for now."""

    status = 429
    type = ProblemType.RATE_LIMITED

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class UnprocessableContent(AppError):
    """Well-formed input that breaks a rule validation could not express."""

    status = 422
    type = ProblemType.UNPROCESSABLE


class IdempotencyKeyReused(UnprocessableContent):
    """The Idempotency-Key was already used with a different request body."""

    type = ProblemType.IDEMPOTENCY_KEY_REUSED


class ValidationFailed(UnprocessableContent):
    """Input that failed validation outside FastAPI (in a worker process, say).

    `errors` are `{loc, msg, type}` items, the shape of FastAPI's own validation errors.
    """

    type = ProblemType.VALIDATION

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        # `errors` has a default so the exception survives pickling out of a worker process.
        super().__init__(detail)
        self.errors = errors or []


class WorkerCrashed(AppError):
    """The worker process running the task died; the pool has been replaced."""

    status = 500
    type = ProblemType.WORKER_CRASHED
    dependency_failure = True


class SimulatedFailure(AppError):
    """The failure the flaky demo's simulated upstream produces on purpose (its own breaker,
    the `flaky` dependency's, counts it)."""

    status = 500
    type = ProblemType.SIMULATED_FAILURE


class ServiceUnavailable(AppError):
    """A dependency or the whole service cannot serve now; retry later."""

    status = 503


class Overloaded(ServiceUnavailable):
    """Capacity is full and the work was refused at once (load shedding), not failed."""

    type = ProblemType.OVERLOADED

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class ShuttingDown(ServiceUnavailable):
    """This instance is draining: new long-lived streams go to another one."""

    def __init__(self) -> None:
        super().__init__(
            "The server is shutting down; reconnect to another instance.",
            headers={"Retry-After": "1"},
        )


class BreakerOpen(ServiceUnavailable):
    """A dependency's circuit breaker refused the call: it has been failing."""

    type = ProblemType.CIRCUIT_OPEN

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class StoreUnavailable(ServiceUnavailable):
    """The shared store did not answer in time or refused.

    Nothing was acknowledged to the client; a write that timed out may still have been applied,
    so clients retry writes with an `Idempotency-Key`."""

    type = ProblemType.STORE_UNAVAILABLE
    # Not counted by the route groups' breakers: the store's own breaker (the "redis"
    # dependency) has already counted it, once for every route that calls Redis.
    dependency_failure = False

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class TaskTimedOut(AppError):
    """A CPU task did not finish within its time limit (its worker may still be running it)."""

    status = 504
    type = ProblemType.TASK_TIMEOUT
    dependency_failure = True


class DeadlineExceeded(AppError):
    """Too little of the request's time was left to start (or finish) a dependency call: the
    answer would come after the client stopped waiting."""

    status = 504
    type = ProblemType.TIMEOUT


class StartupRefused(Exception):
    """Start-up found a state it must not serve in; the message says how to fix it."""


class RepositoryError(Exception):
    """Base of the errors a repository raises."""


class RecordNotFound(RepositoryError):
    """No record with that id in that collection."""

    def __init__(self, collection: str, record_id: int) -> None:
        super().__init__(f"{collection} {record_id} not found")
        self.collection = collection
        self.record_id = record_id


class DuplicateKey(RepositoryError):
    """A unique field already holds that value (compared after normalisation)."""

    def __init__(self, collection: str, field_name: str) -> None:
        super().__init__(f"{collection}.{field_name} must be unique")
        self.collection = collection
        self.field = field_name


class VersionMismatch(RepositoryError):
    """The record's current version is not one the caller expected; nothing was changed."""

    def __init__(self, collection: str, record_id: int, current: int) -> None:
        super().__init__(f"{collection} {record_id} is at version {current}")
        self.collection = collection
        self.record_id = record_id
        self.current = current


class UnknownCollection(RepositoryError):
    """The collection was never declared, or is not part of the current transaction."""


class ReplayedError(AppError):
    """A client error (4xx) answered again, as first answered, to a repeat of its
    `Idempotency-Key` (with `Idempotent-Replayed: true`)."""

    def __init__(
        self, status: int, type_: ProblemType, detail: str, headers: Mapping[str, str]
    ) -> None:
        super().__init__(detail, headers=headers)
        self.status = status
        self.type = type_


class SettingsError(Exception):
    """Raised when the environment holds an invalid setting; the message is one line."""


class CircuitOpenError(Exception):
    """Raised instead of running a call while the breaker refuses calls."""

    def __init__(self, name: str, retry_after: int) -> None:
        super().__init__(f"circuit breaker {name!r} is open; retry in {retry_after} s")
        self.name = name
        self.retry_after = retry_after


class InvalidTokenError(Exception):
    """The token is missing a claim, expired, malformed or not signed by us."""


class ChatJoinRefused(Exception):
    """A chat join the route refuses, closing the socket with the code its class says."""


class NameTaken(ChatJoinRefused):
    """Someone in the room already uses that name."""


class NameHeldBriefly(NameTaken):
    """The name is held by a connection that has ended; free within `retry_after_seconds`."""

    def __init__(self, name: str, *, retry_after_seconds: int) -> None:
        super().__init__(name)
        self.retry_after_seconds = max(1, retry_after_seconds)


class RoomFull(ChatJoinRefused):
    """The room has as many members as a room may have."""
