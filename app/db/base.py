"""The repository interface: what services may ask of storage, whatever the backend.

A record is a plain dict of JSON-like values plus two keys the repository owns: `id` (a positive
integer, never reused) and `version` (1 on create, +1 on every change; the source of ETags).
Backends raise the `RepositoryError` family of `app/core/exceptions.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Record = dict[str, Any]
FilterOp = Literal["eq", "ieq", "icontains"]


@dataclass(frozen=True, slots=True)
class Filter:
    """One condition of a list query: `eq` exact, `ieq` case-insensitive equal,
    `icontains` case-insensitive substring."""

    field: str
    op: FilterOp
    value: Any


@dataclass(frozen=True, slots=True)
class UniqueField:
    """A field whose values are unique in a collection, compared case-insensitively if asked."""

    name: str
    case_insensitive: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list query, with the count of all matches before skip/limit."""

    items: list[Record]
    total: int


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """What a collection enforces: its unique fields and the fields it may be sorted by."""

    name: str
    unique: Sequence[UniqueField] = ()
    sortable: Collection[str] = field(default_factory=lambda: ("id",))


class CollectionOps(Protocol):
    """The operations on records; both the repository and a transaction offer them."""

    async def create(self, collection: str, data: Mapping[str, Any]) -> Record:
        """Insert a record with a fresh id and version 1; return a copy of it."""
        ...

    async def get(self, collection: str, record_id: int) -> Record | None:
        """A copy of the record, or None."""
        ...

    async def find_unique(self, collection: str, field_name: str, value: Any) -> Record | None:
        """A copy of the record whose unique field `field_name` equals `value`, or None."""
        ...

    async def replace(
        self,
        collection: str,
        record_id: int,
        data: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        """Replace every field but `id`; bump the version; return a copy."""
        ...

    async def update(
        self,
        collection: str,
        record_id: int,
        changes: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        """Merge `changes` into the record; bump the version; return a copy."""
        ...

    async def delete(
        self,
        collection: str,
        record_id: int,
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        """Remove the record and return what it was."""
        ...

    async def list(
        self,
        collection: str,
        *,
        filters: Sequence[Filter] = (),
        sort: str = "id",
        skip: int = 0,
        limit: int | None = None,
    ) -> Page:
        """Matching records sorted by `sort` (a field, `-` prefix for descending; ties by id)."""
        ...


class Repository(CollectionOps, Protocol):
    """A store of named collections. Any backend (in memory, SQL) implements this."""

    def declare(self, spec: CollectionSpec) -> None:
        """Create the collection if needed and enforce `spec` from now on."""
        ...

    async def count(self, collection: str) -> int:
        """How many records the collection holds."""
        ...

    def transaction(self, *collections: str) -> AbstractAsyncContextManager[CollectionOps]:
        """Exclusive access to `collections`; every change is undone if the block raises."""
        ...
