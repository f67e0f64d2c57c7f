"""The `Repository` on Redis: every replica reads and writes one dataset.

Layout, per collection (keys start with `<prefix>{<collection>}:`):

    rec           HASH    id -> "<version>|<JSON of the other fields>"
    seq           STRING  the last id given out (INCR: never reused, not even by a rolled-back
                          create; taken only while `<prefix>epoch` is the one this process
                          joined, see app/redis/identity.py)
    uniq:<field>  HASH    normalised value (JSON) -> id, one per unique field
    sort:id       ZSET    ids scored by id: id order, and the count (ZCARD)
    sort:<field>  ZSET    "<marker><casefolded value>\\0<id, 20 digits>", all scored 0, one per
                          sortable field: equal scores order members by their bytes, so a rank
                          range of the set is a sorted page, ties by id

How writes stay correct across processes. Every write, a single update or a whole
transaction, reads what it changes, computes the new records here, and commits them with one
Lua script (`_COMMIT`) that first checks every record is still at the version that was read and
every unique value is still free, and only then applies everything. Redis runs a script alone,
so a commit is atomic and isolated: nothing half-applied is ever seen, and of two racing writes
exactly one commits. The loser of a race reads again and retries (single operations), or gets
`VersionMismatch` (a transaction: its block cannot be run twice).

Reads. `get` is one HGET. An unfiltered page is one script (ZCARD, ZRANGE over the sort index,
HMGET of the page): O(log n + page size) whatever the collection's size. A filter on a unique
field is an index lookup. Any other filter scans the sort index in chunks of `_SCAN_CHUNK`, in
this process (Redis is never blocked for longer than one chunk); such a page is not a
point-in-time snapshot while other writes happen.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import random
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from app.core.exceptions import (
    DuplicateKey,
    Overloaded,
    RecordNotFound,
    StoreUnavailable,
    UnknownCollection,
    VersionMismatch,
)
from app.redis.client import RedisClient
from app.redis.identity import StoreIdentity
from app.stores.records import (
    CollectionOps,
    CollectionSpec,
    Filter,
    Page,
    Record,
    check_list_query,
    matches,
    normalise_unique,
    select,
    unique_filter,
    unique_spec,
    unique_values,
)

_RESERVED = ("id", "version")
_ID_WIDTH = 20
_SCAN_CHUNK = 1000
# How long a filtered list waits for the one running before it is refused.
_SCAN_WAIT_SECONDS = 0.05
_PAGE_MAX = 1000  # larger pages are read in chunks
# Single operations retry a lost race; this many losses in a row means a record under a storm
# of writes, and the client is told to come back rather than kept waiting.
_MAX_ATTEMPTS = 32

# ARGV[1]: a JSON array of operations, each {p: key prefix, id, kind: put|delete|check,
# expect: the version read (0: absent), version, data, unique/old_unique: [[field, value]],
# sort: [[field, member, score]], old_sort: [[field, member]]}.
_COMMIT = """
local ops = cjson.decode(ARGV[1])
local function version_of(op)
  local raw = redis.call('HGET', op.p .. 'rec', op.id)
  if not raw then return 0 end
  return tonumber(string.match(raw, '^(%d+)|'))
end
for _, op in ipairs(ops) do
  local current = version_of(op)
  if current ~= op.expect then return {'conflict', op.p, op.id, current} end
end
local released, claimed = {}, {}
for _, op in ipairs(ops) do
  for _, pair in ipairs(op.old_unique) do released[op.p .. pair[1] .. '\\0' .. pair[2]] = true end
end
for _, op in ipairs(ops) do
  if op.kind == 'put' then
    for _, pair in ipairs(op.unique) do
      local slot = op.p .. pair[1] .. '\\0' .. pair[2]
      local owner = redis.call('HGET', op.p .. 'uniq:' .. pair[1], pair[2])
      if owner and owner ~= op.id and not released[slot] then
        return {'duplicate', op.p, pair[1]}
      end
      if claimed[slot] and claimed[slot] ~= op.id then return {'duplicate', op.p, pair[1]} end
      claimed[slot] = op.id
    end
  end
end
for _, op in ipairs(ops) do
  for _, pair in ipairs(op.old_unique) do
    local index = op.p .. 'uniq:' .. pair[1]
    if redis.call('HGET', index, pair[2]) == op.id then redis.call('HDEL', index, pair[2]) end
  end
  for _, pair in ipairs(op.old_sort) do redis.call('ZREM', op.p .. 'sort:' .. pair[1], pair[2]) end
  if op.kind == 'delete' then redis.call('HDEL', op.p .. 'rec', op.id) end
end
for _, op in ipairs(ops) do
  if op.kind == 'put' then
    redis.call('HSET', op.p .. 'rec', op.id, op.version .. '|' .. op.data)
    for _, pair in ipairs(op.unique) do
      redis.call('HSET', op.p .. 'uniq:' .. pair[1], pair[2], op.id)
    end
    for _, entry in ipairs(op.sort) do
      redis.call('ZADD', op.p .. 'sort:' .. entry[1], entry[3], entry[2])
    end
  end
end
return {'ok'}
"""

# KEYS: the records hash, a sort index. ARGV: '1' descending, skip, count, '1' index by id.
_PAGE = """
local total = redis.call('ZCARD', KEYS[2])
local skip, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local result = {total}
if count <= 0 or skip >= total then return result end
local members
if ARGV[1] == '1' then
  members = redis.call('ZREVRANGE', KEYS[2], skip, skip + count - 1)
else
  members = redis.call('ZRANGE', KEYS[2], skip, skip + count - 1)
end
if #members == 0 then return result end
local ids = {}
for i = 1, #members do
  if ARGV[4] == '1' then ids[i] = members[i]
  else ids[i] = string.match(string.sub(members[i], -20), '^0*(%d+)$') end
end
local values = redis.call('HMGET', KEYS[1], unpack(ids))
for i = 1, #ids do
  result[#result + 1] = ids[i]
  result[#result + 1] = values[i]
end
return result
"""


class _Conflict(Exception):
    """A record changed between read and commit (internal: retried or turned into
    `VersionMismatch`)."""

    def __init__(self, collection: str, record_id: int, current: int) -> None:
        super().__init__(collection, record_id, current)
        self.collection = collection
        self.record_id = record_id
        self.current = current


def _payload(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in _RESERVED}


def _encode(record: Mapping[str, Any]) -> str:
    return orjson.dumps(_payload(record)).decode()


def _decode(record_id: int, raw: bytes | str) -> Record:
    if isinstance(raw, str):
        raw = raw.encode()
    version, _, data = raw.partition(b"|")
    record: Record = {"id": record_id, "version": int(version)}
    record.update(orjson.loads(data))
    return record


def _unique_field(value: Any) -> str:
    # JSON keeps types apart in the index: the string "1" and the number 1 are two values.
    return orjson.dumps(value).decode()


def _sort_members(spec: CollectionSpec, record: Mapping[str, Any]) -> list[list[Any]]:
    record_id = record["id"]
    members: list[list[Any]] = [["id", str(record_id), record_id]]
    for name in spec.sortable:
        if name == "id":
            continue
        value = record.get(name)
        if value is None:
            marker = "\x02"  # after every string: missing values sort last, as in memory
        elif isinstance(value, str):
            marker = "\x01" + value.casefold()
        else:
            raise TypeError(f"{spec.name}.{name}: the Redis store sorts by string fields only")
        members.append([name, f"{marker}\x00{record_id:0{_ID_WIDTH}d}", 0])
    return members


@dataclass(eq=False)
class _Seen:
    """A record as a transaction read it and as it leaves it."""

    spec: CollectionSpec
    read_version: int  # 0: absent when read, or created by this transaction
    original: Record | None
    current: Record | None
    written: bool = False


class _Transaction(CollectionOps):
    """Record operations that read from Redis and buffer their writes until `commit`."""

    def __init__(self, repo: RedisRepository, collections: Collection[str] | None) -> None:
        self._repo = repo
        self._collections = collections
        self._seen: dict[tuple[str, int], _Seen] = {}

    def _spec(self, collection: str) -> CollectionSpec:
        if self._collections is not None and collection not in self._collections:
            raise UnknownCollection(f"collection {collection!r} is not part of this transaction")
        return self._repo.spec(collection)

    async def _load(self, collection: str, record_id: int) -> _Seen:
        seen = self._seen.get((collection, record_id))
        if seen is None:
            spec = self._spec(collection)
            record = await self._repo.fetch(collection, record_id)
            version = record["version"] if record is not None else 0
            seen = _Seen(spec, version, record, record)
            self._seen[(collection, record_id)] = seen
        return seen

    async def _check_unique(self, spec: CollectionSpec, record: Record) -> None:
        # Checked again, atomically, at commit; checking now reports a duplicate where the
        # memory store does, at the call.
        seen = self._seen.get((spec.name, record["id"]))
        before = set(unique_values(spec, seen.original)) if seen and seen.original else set()
        for name, value in unique_values(spec, record):
            if (name, value) in before:
                continue
            for (collection, record_id), other in self._seen.items():
                if (
                    collection == spec.name
                    and record_id != record["id"]
                    and other.current is not None
                    and (name, value) in unique_values(spec, other.current)
                ):
                    raise DuplicateKey(spec.name, name)
            owner = await self._repo.lookup(spec.name, name, value)
            if owner is not None and owner != record["id"]:
                owner_seen = self._seen.get((spec.name, owner))
                if owner_seen is None or not owner_seen.written:
                    raise DuplicateKey(spec.name, name)

    async def create(self, collection: str, data: Mapping[str, Any]) -> Record:
        spec = self._spec(collection)
        record_id = await self._repo.next_id(collection)
        record: Record = {"id": record_id, "version": 1, **copy.deepcopy(_payload(data))}
        _sort_members(spec, record)  # a field that cannot be sorted is refused now
        await self._check_unique(spec, record)
        self._seen[(collection, record_id)] = _Seen(spec, 0, None, record, written=True)
        return copy.deepcopy(record)

    async def get(self, collection: str, record_id: int) -> Record | None:
        seen = await self._load(collection, record_id)
        return copy.deepcopy(seen.current) if seen.current is not None else None

    async def find_unique(self, collection: str, field_name: str, value: Any) -> Record | None:
        spec = self._spec(collection)
        unique = unique_spec(spec, field_name)
        wanted = (field_name, normalise_unique(value, unique.case_insensitive))
        for (name, _), seen in self._seen.items():
            if (
                name == collection
                and seen.written
                and seen.current is not None
                and wanted in unique_values(spec, seen.current)
            ):
                return copy.deepcopy(seen.current)
        record_id = await self._repo.lookup(collection, *wanted)
        if record_id is None:
            return None
        seen = await self._load(collection, record_id)
        if seen.current is None or wanted not in unique_values(spec, seen.current):
            return None
        return copy.deepcopy(seen.current)

    async def _change(
        self,
        collection: str,
        record_id: int,
        expected: Collection[int] | None,
        change: Callable[[Record], Record | None],
    ) -> Record:
        seen = await self._load(collection, record_id)
        current = seen.current
        if current is None:
            raise RecordNotFound(collection, record_id)
        if expected is not None and current["version"] not in expected:
            raise VersionMismatch(collection, record_id, current["version"])
        record = change(current)
        if record is not None:
            _sort_members(seen.spec, record)
            await self._check_unique(seen.spec, record)
        seen.current, seen.written = record, True
        return copy.deepcopy(record if record is not None else current)

    async def replace(
        self,
        collection: str,
        record_id: int,
        data: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        payload = copy.deepcopy(_payload(data))
        return await self._change(
            collection,
            record_id,
            expected_versions,
            lambda current: {"id": record_id, "version": current["version"] + 1, **payload},
        )

    async def update(
        self,
        collection: str,
        record_id: int,
        changes: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        payload = copy.deepcopy(_payload(changes))
        return await self._change(
            collection,
            record_id,
            expected_versions,
            lambda current: {**current, **payload, "version": current["version"] + 1},
        )

    async def delete(
        self,
        collection: str,
        record_id: int,
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        return await self._change(collection, record_id, expected_versions, lambda _: None)

    async def list(
        self,
        collection: str,
        *,
        filters: Sequence[Filter] = (),
        sort: str = "id",
        skip: int = 0,
        limit: int | None = None,
    ) -> Page:
        spec = self._spec(collection)
        field_name = check_list_query(spec, sort, skip, limit)
        own = {rid: s for (name, rid), s in self._seen.items() if name == collection and s.written}
        if not own:
            return await self._repo.list(
                collection, filters=filters, sort=sort, skip=skip, limit=limit
            )
        # This transaction changed the collection: the committed records with its changes over
        # them, selected here (O(n), as any list inside a transaction that wrote).
        records = {r["id"]: r async for r in self._repo.scan(spec, "id", descending=False)}
        for record_id, seen in own.items():
            if seen.current is None:
                records.pop(record_id, None)
            else:
                records[record_id] = seen.current
        page = select(
            records.values(),
            filters=filters,
            field_name=field_name,
            descending=sort.startswith("-"),
            skip=skip,
            limit=limit,
        )
        return Page(items=copy.deepcopy(page.items), total=page.total)

    def operations(self, *, check_reads: bool) -> builtins.list[dict[str, Any]]:
        """What `_COMMIT` applies: every written record, and (if asked) every record read."""
        ops: builtins.list[dict[str, Any]] = []
        for (collection, record_id), seen in self._seen.items():
            base: dict[str, Any] = {
                "p": self._repo.key_prefix(collection),
                "id": str(record_id),
                "expect": seen.read_version,
                "old_unique": [],
                "old_sort": [],
            }
            if not seen.written:
                if check_reads:
                    ops.append({**base, "kind": "check"})
                continue
            if seen.original is None and seen.current is None:
                continue  # created and deleted here: only its id is used up
            if seen.original is not None:
                base["old_unique"] = [
                    [name, _unique_field(value)]
                    for name, value in unique_values(seen.spec, seen.original)
                ]
                base["old_sort"] = [m[:2] for m in _sort_members(seen.spec, seen.original)]
            if seen.current is None:
                ops.append({**base, "kind": "delete"})
                continue
            ops.append(
                {
                    **base,
                    "kind": "put",
                    "version": str(seen.current["version"]),
                    "data": _encode(seen.current),
                    "unique": [
                        [name, _unique_field(value)]
                        for name, value in unique_values(seen.spec, seen.current)
                    ],
                    "sort": _sort_members(seen.spec, seen.current),
                }
            )
        return ops


class RedisRepository:
    """The `Repository` kept in Redis, shared by every process that uses the same Redis.

    Each method does what the `Repository` protocol (`app/stores/records.py`) documents; how this
    backend keeps it true across processes is in the module docstring.
    """

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        # Which dataset ids come from, and what to do when Redis comes back without it.
        self.identity = StoreIdentity(client)
        self._specs: dict[str, CollectionSpec] = {}
        self._by_prefix: dict[str, str] = {}
        self._commit = client.script(_COMMIT)
        self._page = client.script(_PAGE)
        self._stripes = [asyncio.Lock() for _ in range(64)]
        # A filtered list decodes and tests every record here, in the web process (Redis has no
        # index for "name contains"): one at a time per process, so one client sending varied
        # filters cannot stack scans up; another waits its turn briefly, then gets 503.
        self._scans = asyncio.Semaphore(1)

    # --- building blocks, used by the transactions ------------------------------------------

    def declare(self, spec: CollectionSpec) -> None:
        self._specs[spec.name] = spec
        self._by_prefix[self.key_prefix(spec.name)] = spec.name

    def spec(self, collection: str) -> CollectionSpec:
        """The declared spec of `collection`."""
        try:
            return self._specs[collection]
        except KeyError:
            raise UnknownCollection(f"collection {collection!r} was never declared") from None

    def key_prefix(self, collection: str) -> str:
        """Where the collection's keys start (the braces keep them in one cluster slot)."""
        return f"{self._client.prefix}{{{collection}}}:"

    async def fetch(self, collection: str, record_id: int) -> Record | None:
        """The stored record (not copied: freshly decoded), or None."""
        key = self.key_prefix(collection) + "rec"
        raw = await self._client.call(
            "repository.get", lambda r: r.hget(key, str(record_id)), idempotent=True
        )
        if raw is None:
            return None
        self.identity.saw(self.key_prefix(collection) + "seq", record_id)
        return _decode(record_id, raw)

    async def lookup(self, collection: str, field_name: str, normalised: Any) -> int | None:
        """The id holding a unique value (already normalised), or None."""
        key = f"{self.key_prefix(collection)}uniq:{field_name}"
        raw = await self._client.call(
            "repository.lookup", lambda r: r.hget(key, _unique_field(normalised)), idempotent=True
        )
        return int(raw) if raw is not None else None

    async def next_id(self, collection: str) -> int:
        """A fresh id (a counter in Redis: never given out twice, not even after Redis lost its
        data: see `app/redis/identity.py`)."""
        return await self.identity.next_id(self.key_prefix(collection) + "seq")

    async def scan(
        self, spec: CollectionSpec, field_name: str, *, descending: bool
    ) -> AsyncIterator[Record]:
        """Every record in the order of a sort index, read a chunk at a time."""
        skip = 0
        while True:
            total, records = await self._read_page(spec, field_name, descending, skip, _SCAN_CHUNK)
            for record in records:
                yield record
            skip += _SCAN_CHUNK
            if skip >= total or not records:
                return

    async def _read_page(
        self, spec: CollectionSpec, field_name: str, descending: bool, skip: int, count: int
    ) -> tuple[int, list[Record]]:
        prefix = self.key_prefix(spec.name)
        keys = [prefix + "rec", f"{prefix}sort:{field_name}"]
        args = ["1" if descending else "0", skip, count, "1" if field_name == "id" else "0"]
        reply = await self._client.call(
            "repository.page", lambda r: self._page(keys, args), idempotent=True
        )
        records = [
            _decode(int(reply[i]), reply[i + 1])
            for i in range(1, len(reply), 2)
            if reply[i + 1] is not None
        ]
        if records:
            self.identity.saw(prefix + "seq", max(record["id"] for record in records))
        return int(reply[0]), records

    async def commit(self, tx: _Transaction, *, check_reads: bool) -> None:
        """Apply a transaction's writes atomically, or raise `_Conflict` / `DuplicateKey`."""
        ops = tx.operations(check_reads=check_reads)
        if not ops:
            return
        argument = orjson.dumps(ops).decode()
        reply = await self._client.call(
            "repository.commit", lambda r: self._commit([], [argument], r), durable=True
        )
        status = reply[0]
        if status == b"ok":
            return
        collection = self._by_prefix[reply[1].decode()]
        if status == b"duplicate":
            raise DuplicateKey(collection, reply[2].decode())
        raise _Conflict(collection, int(reply[2]), int(reply[3]))

    async def _single(
        self, collection: str, record_id: int, action: Callable[[_Transaction], Any]
    ) -> Any:
        self.spec(collection)
        # Writers to one record in this process take turns, so races are only ever between
        # processes; those are retried after a short random pause, which breaks up a herd.
        async with self._stripes[hash((collection, record_id)) % len(self._stripes)]:
            for attempt in range(_MAX_ATTEMPTS):
                tx = _Transaction(self, (collection,))
                result = await action(tx)
                try:
                    await self.commit(tx, check_reads=False)
                except _Conflict:
                    await asyncio.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 6)))  # noqa: S311
                    continue
                return result
        raise StoreUnavailable(
            f"A {collection} record kept changing while this write was applied; retry."
        )

    # --- the Repository protocol ------------------------------------------------------------

    async def create(self, collection: str, data: Mapping[str, Any]) -> Record:
        spec = self.spec(collection)
        tx = _Transaction(self, (collection,))
        record = await tx.create(collection, data)
        try:
            await self.commit(tx, check_reads=False)
        except _Conflict:  # pragma: no cover - a fresh id cannot be taken
            raise StoreUnavailable(f"{spec.name} id {record['id']} was taken; retry.") from None
        return record

    async def get(self, collection: str, record_id: int) -> Record | None:
        self.spec(collection)
        return await self.fetch(collection, record_id)

    async def find_unique(self, collection: str, field_name: str, value: Any) -> Record | None:
        spec = self.spec(collection)
        normalised = normalise_unique(value, unique_spec(spec, field_name).case_insensitive)
        record_id = await self.lookup(collection, field_name, normalised)
        if record_id is None:
            return None
        record = await self.fetch(collection, record_id)
        # Between the two reads the record may have changed its value or gone.
        if record is None or (field_name, normalised) not in unique_values(spec, record):
            return None
        return record

    async def replace(
        self,
        collection: str,
        record_id: int,
        data: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        return await self._single(  # type: ignore[no-any-return]
            collection,
            record_id,
            lambda tx: tx.replace(collection, record_id, data, expected_versions=expected_versions),
        )

    async def update(
        self,
        collection: str,
        record_id: int,
        changes: Mapping[str, Any],
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        return await self._single(  # type: ignore[no-any-return]
            collection,
            record_id,
            lambda tx: tx.update(
                collection, record_id, changes, expected_versions=expected_versions
            ),
        )

    async def delete(
        self,
        collection: str,
        record_id: int,
        *,
        expected_versions: Collection[int] | None = None,
    ) -> Record:
        return await self._single(  # type: ignore[no-any-return]
            collection,
            record_id,
            lambda tx: tx.delete(collection, record_id, expected_versions=expected_versions),
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
        spec = self.spec(collection)
        field_name = check_list_query(spec, sort, skip, limit)
        descending = sort.startswith("-")
        if not filters and limit is not None and limit <= _PAGE_MAX:
            total, records = await self._read_page(spec, field_name, descending, skip, limit)
            return Page(items=records, total=total)
        indexed = unique_filter(spec, filters)
        if indexed is not None:
            record = await self.find_unique(collection, indexed.field, indexed.value)
            found = (
                [record] if record is not None and all(matches(record, f) for f in filters) else []
            )
            return Page(
                items=found[skip : None if limit is None else skip + limit], total=len(found)
            )
        # Filtered: walk the index in order, keep only the page, count every match.
        try:
            await asyncio.wait_for(self._scans.acquire(), _SCAN_WAIT_SECONDS)
        except TimeoutError:
            raise Overloaded(
                "Another filtered list is being computed; retry shortly.", retry_after=1
            ) from None
        try:
            items: builtins.list[Record] = []
            total = 0
            end = None if limit is None else skip + limit
            async for record in self.scan(spec, field_name, descending=descending):
                if all(matches(record, f) for f in filters):
                    if total >= skip and (end is None or total < end):
                        items.append(record)
                    total += 1
            return Page(items=items, total=total)
        finally:
            self._scans.release()

    async def count(self, collection: str) -> int:
        key = self.key_prefix(collection) + "sort:id"
        self.spec(collection)
        return int(
            await self._client.call("repository.count", lambda r: r.zcard(key), idempotent=True)
        )

    @asynccontextmanager
    async def transaction(self, *collections: str) -> AsyncIterator[CollectionOps]:
        """Reads from Redis, writes buffered and committed atomically when the block ends.

        Optimistic: every record the block read or wrote must be unchanged at commit, or
        nothing is applied and `VersionMismatch` is raised (run the block again). If the block
        raises, nothing was written (ids it created are used up, never reused).
        """
        if not collections:
            raise ValueError("a transaction needs at least one collection")
        for name in collections:
            self.spec(name)
        tx = _Transaction(self, frozenset(collections))
        yield tx
        try:
            await self.commit(tx, check_reads=True)
        except _Conflict as conflict:
            raise VersionMismatch(
                conflict.collection, conflict.record_id, conflict.current
            ) from None
