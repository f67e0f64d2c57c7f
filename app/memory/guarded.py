"""The in-memory repository behind the same dependency pipeline as Redis.

The memory store cannot fail by itself, but a learner should be able to watch what the app
does when its store fails without installing Redis: so the users service reaches the memory
store through a `Dependency` named `store`, whose breaker, deadline, bulkhead, retries and
recovery probe are the ones Redis has, and into which an admin can inject faults
(`app/core/faults.py`). Reads are `idempotent`; a write never is. A fault's failure becomes
`StoreUnavailable` (503 with `Retry-After`), as a Redis outage does.

The health check and the snapshot manager keep the repository itself: an injected fault is a
drill for the request path, not a reason to report the process unready or to stop saving.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from app.core.dependency import Dependency
from app.core.exceptions import StoreUnavailable
from app.core.faults import InjectedFault
from app.stores.records import CollectionOps, CollectionSpec, Filter, Page, Record, Repository

T = TypeVar("T")

# A memory call never waits for a network; only an injected latency can use this much.
STORE_CALL_SECONDS = 1.0


def is_store_failure(exc: BaseException) -> bool:
    """What the `store` breaker counts: an injected failure or a call past its time."""
    return isinstance(exc, InjectedFault | TimeoutError)


def is_store_retriable(exc: BaseException) -> bool:
    """A drill's reset connection is retried as a real one would be; a timeout never."""
    return isinstance(exc, InjectedFault)


def refused(detail: str, retry_after: int) -> StoreUnavailable:
    """The 503 a refused store call answers."""
    return StoreUnavailable(detail, retry_after=retry_after)


class GuardedRepository:
    """A `Repository` whose record operations go through `dependency`."""

    def __init__(self, repository: Repository, dependency: Dependency) -> None:
        self.repository = repository
        self.dependency = dependency

    async def _through(self, call: Callable[[], Awaitable[T]], *, idempotent: bool = False) -> T:
        async def run(within_seconds: float) -> T:
            return await call()

        try:
            return await self.dependency.call(run, idempotent=idempotent)
        except (InjectedFault, TimeoutError):
            raise StoreUnavailable("The store did not answer; retry shortly.") from None

    def declare(self, spec: CollectionSpec) -> None:
        """Declared on the repository itself."""
        self.repository.declare(spec)

    async def count(self, collection: str) -> int:
        """How many records the collection holds."""
        return await self._through(lambda: self.repository.count(collection), idempotent=True)

    def transaction(self, *collections: str) -> AbstractAsyncContextManager[CollectionOps]:
        """The repository's own transaction (its operations are the guarded calls' insides)."""
        return self.repository.transaction(*collections)

    async def create(self, collection: str, data: Mapping[str, Any]) -> Record:
        """Insert a record."""
        return await self._through(lambda: self.repository.create(collection, data))

    async def get(self, collection: str, record_id: int) -> Record | None:
        """A copy of the record, or None."""
        return await self._through(
            lambda: self.repository.get(collection, record_id), idempotent=True
        )

    async def find_unique(self, collection: str, field_name: str, value: Any) -> Record | None:
        """The record whose unique field equals `value`, or None."""
        return await self._through(
            lambda: self.repository.find_unique(collection, field_name, value), idempotent=True
        )

    async def replace(
        self,
        collection: str,
        record_id: int,
        data: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        """Replace every field but `id`."""
        return await self._through(
            lambda: self.repository.replace(
                collection, record_id, data, expected_versions=expected_versions
            )
        )

    async def update(
        self,
        collection: str,
        record_id: int,
        changes: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        """Merge `changes` into the record."""
        return await self._through(
            lambda: self.repository.update(
                collection, record_id, changes, expected_versions=expected_versions
            )
        )

    async def delete(
        self,
        collection: str,
        record_id: int,
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        """Remove the record."""
        return await self._through(
            lambda: self.repository.delete(
                collection, record_id, expected_versions=expected_versions
            )
        )

    async def list(
        self,
        collection: str,
        *,
        filters: Sequence[Filter] = (),
        sort: str = "id",
        skip: int = 0,
        limit: int | None = None,
    ) -> Page:
        """Matching records, sorted and paged."""
        return await self._through(
            lambda: self.repository.list(
                collection, filters=filters, sort=sort, skip=skip, limit=limit
            ),
            idempotent=True,
        )
