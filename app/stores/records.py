"""The repository interface: what services may ask of storage, whatever the backend.

A record is a plain dict of JSON-like values plus two keys the repository owns: `id` (a positive
integer, never reused) and `version` (1 on create, +1 on every change; the source of ETags).
Backends raise the `RepositoryError` family of `app/core/exceptions.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
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


def normalise_unique(value: Any, case_insensitive: bool) -> Any:
    """The form a unique value is compared in (casefolded strings when case-insensitive)."""
    return value.casefold() if case_insensitive and isinstance(value, str) else value


def unique_values(spec: CollectionSpec, record: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(field, normalised value) for every unique field the record sets."""
    pairs = []
    for unique in spec.unique:
        value = record.get(unique.name)
        if value is not None:
            pairs.append((unique.name, normalise_unique(value, unique.case_insensitive)))
    return pairs


def unique_spec(spec: CollectionSpec, field_name: str) -> UniqueField:
    """The unique field `field_name` of a collection; ValueError if it is not one."""
    for unique in spec.unique:
        if unique.name == field_name:
            return unique
    raise ValueError(f"{spec.name}.{field_name} is not a unique field")


def unique_filter(spec: CollectionSpec, filters: Sequence[Filter]) -> Filter | None:
    """A filter a unique index answers, if any: `ieq` on a case-insensitive unique field, `eq`
    on a case-sensitive one."""
    for flt in filters:
        for unique in spec.unique:
            if (
                flt.field == unique.name
                and isinstance(flt.value, str)
                and flt.op in ("eq", "ieq")
                and (flt.op == "ieq") == unique.case_insensitive
            ):
                return flt
    return None


def check_list_query(spec: CollectionSpec, sort: str, skip: int, limit: int | None) -> str:
    """Validate a list query's sort, skip and limit; return the sort field's name."""
    field_name = sort.removeprefix("-")
    if field_name not in spec.sortable:
        raise ValueError(f"{spec.name} cannot be sorted by {field_name!r}")
    if skip < 0 or (limit is not None and limit < 0):
        raise ValueError("skip and limit must not be negative")
    return field_name


def matches(record: Mapping[str, Any], flt: Filter) -> bool:
    """Whether `record` satisfies one filter."""
    value = record.get(flt.field)
    if flt.op == "eq":
        return bool(value == flt.value)
    if not isinstance(value, str) or not isinstance(flt.value, str):
        return False
    if flt.op == "ieq":
        return value.casefold() == flt.value.casefold()
    return flt.value.casefold() in value.casefold()


def sort_key(field_name: str) -> Any:
    """The order of a list sorted by `field_name`: strings casefolded, missing values last,
    ties by id."""

    def key(record: Mapping[str, Any]) -> tuple[bool, Any, int]:
        value = record.get(field_name)
        if isinstance(value, str):
            value = value.casefold()
        return (value is None, value, record["id"])

    return key


def select(
    records: Iterable[Record],
    *,
    filters: Sequence[Filter],
    field_name: str,
    descending: bool,
    skip: int,
    limit: int | None,
    in_id_order: bool = False,
) -> Page:
    """Filter, sort and page records in Python: what a backend does when no index answers.

    `in_id_order`: the records come in ascending id order already, so an id sort is free.
    Returns the selected records themselves (not copies): the caller copies what it keeps.
    """
    found = [r for r in records if all(matches(r, f) for f in filters)]
    if field_name != "id":
        found.sort(key=sort_key(field_name), reverse=descending)
    elif not in_id_order:
        found.sort(key=lambda r: r["id"], reverse=descending)
    elif descending:
        found.reverse()
    end = None if limit is None else skip + limit
    return Page(items=found[skip:end], total=len(found))


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
        """Matching records sorted by `sort` (a field, `-` prefix for descending), ties broken
        by id in the same direction; `total` counts every match before skip/limit."""
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
