"""An async in-memory repository: one `asyncio.Lock` per collection, copies in and out.

The rules that make it safe under concurrency:
- every read and write of a collection holds that collection's lock, so a reader never sees
  the half-done work of a transaction (the lock is held across the transaction's awaits);
- a transaction takes its locks in sorted name order, so two transactions cannot deadlock;
- ids come from a per-collection counter that only goes up (a rolled-back create does not give
  its id back, as with a database sequence), so an id is never reused; with a journal
  (`app/memory/journal.py`), ids are reserved in durable blocks, so not even a crash reuses one;
- with a journal, every committed change is appended under the lock that made it, and the
  write returns once the journal has it (after the lock is released, so commits are batched);
- data is deep-copied on the way in and on the way out: no caller ever holds a reference to a
  stored object;
- records are kept in id order (an update replaces a record in place), so a list by id walks
  to its page and copies only the page; a list sorted by another field sorts the collection
  once and keeps that order until the next write, so between writes it too costs its page.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from app.core.exceptions import DuplicateKey, RecordNotFound, UnknownCollection, VersionMismatch
from app.memory.journal import ID_BLOCK, Change, Journal, Replayed
from app.stores.records import (
    CollectionOps,
    CollectionSpec,
    Filter,
    Page,
    Record,
    check_list_query,
    normalise_unique,
    select,
    sort_key,
    unique_filter,
    unique_spec,
    unique_values,
)

_RESERVED = ("id", "version")

RECORDS = Gauge(
    "repository_records",
    "Records held per collection (each process has its own in-memory store).",
    ["collection"],
    multiprocess_mode="liveall",
)


@dataclass(eq=False)
class _Collection:
    spec: CollectionSpec
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    records: dict[int, Record] = field(default_factory=dict)
    last_id: int = 0
    # With a journal: ids up to this one are reserved durably (a crash resumes past it).
    ids_reserved: int = 0
    # unique field -> normalised value -> record id
    indexes: dict[str, dict[Any, int]] = field(default_factory=dict)
    # sort field -> every record in ascending order of that field (ties by id), built by the
    # first unfiltered list sorted by it and dropped by the next write: between writes, a page
    # costs the page, not a sort of the collection.
    sorted_by: dict[str, list[Record]] = field(default_factory=dict)


# An undo entry: the collection, the record id, and the record before the change (None: absent).
_UndoEntry = tuple[_Collection, int, Record | None]


def _unique_keys(col: _Collection, record: Record) -> Iterable[tuple[str, Any]]:
    return unique_values(col.spec, record)


def _check_unique(col: _Collection, record: Record, record_id: int) -> None:
    for name, key in _unique_keys(col, record):
        owner = col.indexes[name].get(key)
        if owner is not None and owner != record_id:
            raise DuplicateKey(col.spec.name, name)


def _put(
    col: _Collection, record_id: int, record: Record | None, undo: list[_UndoEntry] | None
) -> None:
    """Store `record` under `record_id` (None deletes), keeping the unique indexes in step."""
    previous = col.records.get(record_id)
    col.sorted_by.clear()
    if undo is not None:
        undo.append((col, record_id, previous))
    if previous is not None:
        for name, key in _unique_keys(col, previous):
            col.indexes[name].pop(key, None)
        if record is None:
            del col.records[record_id]
    if record is not None:
        # Assigned in place: an updated record keeps its position (records stay in id order).
        col.records[record_id] = record
        for name, key in _unique_keys(col, record):
            col.indexes[name][key] = record_id
    if (previous is None) != (record is None):
        RECORDS.labels(collection=col.spec.name).set(len(col.records))


def _existing(col: _Collection, record_id: int, expected: Collection[int] | None) -> Record:
    record = col.records.get(record_id)
    if record is None:
        raise RecordNotFound(col.spec.name, record_id)
    if expected is not None and record["version"] not in expected:
        raise VersionMismatch(col.spec.name, record_id, record["version"])
    return record


def _after_images(changed: list[_UndoEntry]) -> list[Change]:
    """What a commit changed, as the journal records it: each record as it is now."""
    latest: dict[tuple[str, int], Record | None] = {}
    for col, record_id, _ in changed:
        latest[(col.spec.name, record_id)] = col.records.get(record_id)
    return [(name, record_id, record) for (name, record_id), record in latest.items()]


def _payload(data: Mapping[str, Any]) -> Record:
    return {k: copy.deepcopy(v) for k, v in data.items() if k not in _RESERVED}


class _Ops(CollectionOps):
    """The record operations over already-locked collections, journaling changes if asked."""

    def __init__(
        self,
        collections: Mapping[str, _Collection],
        undo: list[_UndoEntry] | None,
        journal: Journal | None = None,
    ) -> None:
        self._collections = collections
        self._undo = undo
        self._journal = journal

    def _col(self, name: str) -> _Collection:
        try:
            return self._collections[name]
        except KeyError:
            raise UnknownCollection(f"collection {name!r} is not available here") from None

    async def create(self, collection: str, data: Mapping[str, Any]) -> Record:
        col = self._col(collection)
        record = _payload(data)
        _check_unique(col, record, record_id=0)
        col.last_id += 1
        if self._journal is not None and col.last_id > col.ids_reserved:
            col.ids_reserved = col.last_id + ID_BLOCK - 1
            self._journal.reserve(col.spec.name, col.ids_reserved)
        record = {"id": col.last_id, "version": 1, **record}
        _put(col, col.last_id, record, self._undo)
        return copy.deepcopy(record)

    async def get(self, collection: str, record_id: int) -> Record | None:
        record = self._col(collection).records.get(record_id)
        return copy.deepcopy(record) if record is not None else None

    async def find_unique(self, collection: str, field_name: str, value: Any) -> Record | None:
        col = self._col(collection)
        unique = unique_spec(col.spec, field_name)
        record_id = col.indexes[field_name].get(normalise_unique(value, unique.case_insensitive))
        return await self.get(collection, record_id) if record_id is not None else None

    async def replace(
        self,
        collection: str,
        record_id: int,
        data: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        col = self._col(collection)
        current = _existing(col, record_id, expected_versions)
        record = {"id": record_id, "version": current["version"] + 1, **_payload(data)}
        _check_unique(col, record, record_id)
        _put(col, record_id, record, self._undo)
        return copy.deepcopy(record)

    async def update(
        self,
        collection: str,
        record_id: int,
        changes: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        col = self._col(collection)
        current = _existing(col, record_id, expected_versions)
        record = {**current, **_payload(changes), "version": current["version"] + 1}
        _check_unique(col, record, record_id)
        _put(col, record_id, record, self._undo)
        return copy.deepcopy(record)

    async def delete(
        self,
        collection: str,
        record_id: int,
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        col = self._col(collection)
        current = _existing(col, record_id, expected_versions)
        _put(col, record_id, None, self._undo)
        # A copy even now: a rollback would put this very object back into the store.
        return copy.deepcopy(current)

    async def list(
        self,
        collection: str,
        *,
        filters: Sequence[Filter] = (),
        sort: str = "id",
        skip: int = 0,
        limit: int | None = None,
    ) -> Page:
        col = self._col(collection)
        field_name = check_list_query(col.spec, sort, skip, limit)
        descending = sort.startswith("-")
        if not filters and field_name == "id":
            # Records are kept in id order: walk to the page, touching nothing past it.
            ordered = reversed(col.records.values()) if descending else iter(col.records.values())
            end = None if limit is None else skip + limit
            items = list(itertools.islice(ordered, skip, end))
            return Page(items=copy.deepcopy(items), total=len(col.records))
        if not filters:
            by_field = col.sorted_by.get(field_name)
            if by_field is None:
                by_field = sorted(col.records.values(), key=sort_key(field_name))
                col.sorted_by[field_name] = by_field
            # Ties are broken by id, so no two keys are equal and descending is exactly the
            # ascending order reversed.
            walk = reversed(by_field) if descending else iter(by_field)
            end = None if limit is None else skip + limit
            items = list(itertools.islice(walk, skip, end))
            return Page(items=copy.deepcopy(items), total=len(by_field))
        records: Iterable[Record] = col.records.values()
        indexed = unique_filter(col.spec, filters)
        if indexed is not None:
            # At most one record can match: the unique index finds it without a scan.
            key = normalise_unique(indexed.value, indexed.op == "ieq")
            owner = col.indexes[indexed.field].get(key)
            records = [col.records[owner]] if owner is not None else []
        page = select(
            records,
            filters=filters,
            field_name=field_name,
            descending=descending,
            skip=skip,
            limit=limit,
            in_id_order=True,
        )
        return Page(items=copy.deepcopy(page.items), total=page.total)


class MemoryRepository:
    """The `Repository` held in this process's memory: fast, simple, gone on restart.

    Each method does what the `Repository` protocol (`app/stores/records.py`) documents; what this
    backend adds is in the module docstring and in `export`, `restore` and `transaction`.
    """

    def __init__(self) -> None:
        self._collections: dict[str, _Collection] = {}
        self._journal: Journal | None = None

    def attach_journal(self, journal: Journal) -> None:
        """Append every committed change to `journal` from now on (after the replay)."""
        self._journal = journal

    def declare(self, spec: CollectionSpec) -> None:
        col = self._collections.get(spec.name)
        if col is None:
            col = _Collection(spec=spec)
            self._collections[spec.name] = col
            RECORDS.labels(collection=spec.name).set(0)
        col.spec = spec
        col.indexes = {u.name: {} for u in spec.unique}
        for record_id, record in col.records.items():
            _check_unique(col, record, record_id)
            for name, key in _unique_keys(col, record):
                col.indexes[name][key] = record_id

    def _col(self, name: str) -> _Collection:
        try:
            return self._collections[name]
        except KeyError:
            raise UnknownCollection(f"collection {name!r} was never declared") from None

    @asynccontextmanager
    async def _locked(self, name: str) -> AsyncIterator[_Ops]:
        col = self._col(name)
        async with col.lock:
            yield _Ops({name: col}, undo=None)

    @asynccontextmanager
    async def _writing(self, name: str) -> AsyncIterator[_Ops]:
        journal = self._journal
        if journal is None:
            async with self._locked(name) as ops:
                yield ops
            return
        journal.check_writable()
        col = self._col(name)
        changed: list[_UndoEntry] = []
        async with col.lock:
            yield _Ops({name: col}, changed, journal)
            durable = journal.commit(_after_images(changed))
        # Outside the lock: the next writer goes ahead, and both commits share one disk write.
        await durable

    async def create(self, collection: str, data: Mapping[str, Any]) -> Record:
        async with self._writing(collection) as ops:
            return await ops.create(collection, data)

    async def get(self, collection: str, record_id: int) -> Record | None:
        async with self._locked(collection) as ops:
            return await ops.get(collection, record_id)

    async def find_unique(self, collection: str, field_name: str, value: Any) -> Record | None:
        async with self._locked(collection) as ops:
            return await ops.find_unique(collection, field_name, value)

    async def replace(
        self,
        collection: str,
        record_id: int,
        data: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        async with self._writing(collection) as ops:
            return await ops.replace(
                collection, record_id, data, expected_versions=expected_versions
            )

    async def update(
        self,
        collection: str,
        record_id: int,
        changes: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        async with self._writing(collection) as ops:
            return await ops.update(
                collection, record_id, changes, expected_versions=expected_versions
            )

    async def delete(
        self,
        collection: str,
        record_id: int,
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        async with self._writing(collection) as ops:
            return await ops.delete(collection, record_id, expected_versions=expected_versions)

    async def list(
        self,
        collection: str,
        *,
        filters: Sequence[Filter] = (),
        sort: str = "id",
        skip: int = 0,
        limit: int | None = None,
    ) -> Page:
        async with self._locked(collection) as ops:
            return await ops.list(collection, filters=filters, sort=sort, skip=skip, limit=limit)

    async def count(self, collection: str) -> int:
        col = self._col(collection)
        async with col.lock:
            return len(col.records)

    def size(self) -> int:
        """Records held across every collection (start-up's log line)."""
        return sum(len(col.records) for col in self._collections.values())

    async def export(self, *, final: bool = False) -> dict[str, Any]:
        """A consistent copy of every collection (records and id counters), for snapshots.

        Takes every collection's lock, in sorted order, so the copy is one point in time; with
        a journal, the journal starts its next generation at that same point (`generation`).
        A `final` export (the last snapshot of a clean shutdown) gives back unused reserved ids.
        """
        names = sorted(self._collections)
        async with AsyncExitStack() as stack:
            for name in names:
                await stack.enter_async_context(self._collections[name].lock)
            collections: dict[str, Any] = {}
            for name in names:
                col = self._collections[name]
                if final:
                    col.ids_reserved = col.last_id
                collections[name] = {
                    "last_id": max(col.last_id, col.ids_reserved),
                    "records": copy.deepcopy(list(col.records.values())),
                }
            generation = self._journal.rotate() if self._journal is not None else None
        return {"collections": collections, "journal_generation": generation}

    def restore(self, collections: Mapping[str, Any]) -> None:
        """Replace the contents with `export()`'s collections (at start-up, before serving).

        Collections must have been declared; ids continue after the highest one seen.
        """
        for name, data in collections.items():
            col = self._col(name)
            loaded = sorted(data["records"], key=lambda r: int(r["id"]))  # kept in id order
            records = {int(r["id"]): copy.deepcopy(r) for r in loaded}
            col.records = records
            col.sorted_by.clear()
            col.last_id = max([int(data.get("last_id", 0)), *records])
            self.declare(col.spec)  # rebuilds and checks the unique indexes
            RECORDS.labels(collection=name).set(len(records))

    def replay(self, entry: Replayed) -> None:
        """Apply one journal line (at start-up, after the snapshot, before serving)."""
        for name, upto in entry.reserved.items():
            col = self._col(name)
            # A crash may have lost ids of this block that were handed out: skip them all.
            col.last_id = max(col.last_id, upto)
        for name, record_id, record in entry.changes:
            col = self._col(name)
            if record is not None:
                _check_unique(col, record, record_id)
            _put(col, record_id, record, undo=None)
            col.last_id = max(col.last_id, record_id)
        for name in {name for name, _, _ in entry.changes}:
            col = self._col(name)
            # A record deleted and created again went to the end: restore id order.
            col.records = dict(sorted(col.records.items()))

    @asynccontextmanager
    async def transaction(self, *collections: str) -> AsyncIterator[CollectionOps]:
        """Exclusive access to `collections`; every change is undone if the block raises.

        Locks are taken in sorted name order (never the order given), so two transactions over
        the same collections cannot wait on each other. Inside the block, use only the yielded
        object: the repository's own methods would wait on a lock the block already holds.
        """
        if not collections:
            raise ValueError("a transaction needs at least one collection")
        names = sorted(set(collections))
        cols = {name: self._col(name) for name in names}
        undo: list[_UndoEntry] = []
        journal = self._journal
        if journal is not None:
            journal.check_writable()
        durable: asyncio.Future[None] | None = None
        async with AsyncExitStack() as stack:
            for name in names:
                await stack.enter_async_context(cols[name].lock)
            try:
                yield _Ops(cols, undo, journal)
            except BaseException:
                # Cancellation included: a half-applied transaction must never stay visible.
                for col, record_id, previous in reversed(undo):
                    _put(col, record_id, previous, undo=None)
                for col in {entry[0] for entry in undo}:
                    # A deleted record put back went to the end: restore id order.
                    col.records = dict(sorted(col.records.items()))
                raise
            if journal is not None and undo:
                # One line for the whole transaction: a replay applies all of it or none.
                durable = journal.commit(_after_images(undo))
        if durable is not None:
            await durable
