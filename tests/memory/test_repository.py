"""The repository contract, run against both backends (in memory, and a real redis-server):
copies, versions, uniqueness, queries, transactions, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.core.exceptions import DuplicateKey, RecordNotFound, UnknownCollection, VersionMismatch
from app.memory.repository import MemoryRepository
from app.redis.client import RedisClient
from app.redis.repository import RedisRepository
from app.stores.records import CollectionSpec, Filter, Page, Repository, UniqueField

PEOPLE = CollectionSpec(
    name="people",
    unique=(UniqueField("email", case_insensitive=True),),
    sortable=("id", "name"),
)
ORDERS = CollectionSpec(name="orders")


@pytest.fixture(params=["memory", "redis"])
async def repo(request: pytest.FixtureRequest) -> AsyncIterator[Repository]:
    client = None
    repository: Repository  # assigning checks each backend satisfies the Protocol
    if request.param == "memory":
        repository = MemoryRepository()
    else:
        client = RedisClient(
            request.getfixturevalue("redis_url"), timeout_seconds=5.0, max_connections=64
        )
        repository = RedisRepository(client)
    repository.declare(PEOPLE)
    repository.declare(ORDERS)
    yield repository
    if client is not None:
        await client.close()


async def test_create_assigns_increasing_ids_and_version_one(repo: Repository) -> None:
    first = await repo.create("people", {"email": "a@x.io", "name": "A"})
    second = await repo.create("people", {"email": "b@x.io", "name": "B"})
    assert (first["id"], first["version"]) == (1, 1)
    assert (second["id"], second["version"]) == (2, 1)


async def test_caller_cannot_choose_id_or_version(repo: Repository) -> None:
    record = await repo.create("people", {"id": 99, "version": 7, "email": "a@x.io", "name": "A"})
    assert (record["id"], record["version"]) == (1, 1)


async def test_mutating_a_returned_record_does_not_change_the_store(repo: Repository) -> None:
    created = await repo.create("people", {"email": "a@x.io", "name": "A", "tags": ["x"]})
    created["name"] = "changed"
    created["tags"].append("y")
    fetched = await repo.get("people", created["id"])
    assert fetched is not None
    fetched["tags"].append("z")
    again = await repo.get("people", created["id"])
    assert again == {"id": 1, "version": 1, "email": "a@x.io", "name": "A", "tags": ["x"]}


async def test_mutating_the_input_after_create_does_not_change_the_store(repo: Repository) -> None:
    tags = ["x"]
    data: dict[str, Any] = {"email": "a@x.io", "name": "A", "tags": tags}
    await repo.create("people", data)
    tags.append("y")
    data["name"] = "B"
    stored = await repo.get("people", 1)
    assert stored is not None
    assert stored["tags"] == ["x"]
    assert stored["name"] == "A"


async def test_ids_are_never_reused_after_delete(repo: Repository) -> None:
    await repo.create("people", {"email": "a@x.io", "name": "A"})
    await repo.delete("people", 1)
    record = await repo.create("people", {"email": "a@x.io", "name": "A"})
    assert record["id"] == 2


async def test_update_merges_and_bumps_version(repo: Repository) -> None:
    await repo.create("people", {"email": "a@x.io", "name": "A", "age": 3})
    updated = await repo.update("people", 1, {"name": "B"})
    assert updated == {"id": 1, "version": 2, "email": "a@x.io", "name": "B", "age": 3}


async def test_replace_drops_fields_not_given(repo: Repository) -> None:
    await repo.create("people", {"email": "a@x.io", "name": "A", "age": 3})
    replaced = await repo.replace("people", 1, {"email": "a@x.io", "name": "C"})
    assert replaced == {"id": 1, "version": 2, "email": "a@x.io", "name": "C"}


async def test_stale_expected_version_changes_nothing(repo: Repository) -> None:
    await repo.create("people", {"email": "a@x.io", "name": "A"})
    await repo.update("people", 1, {"name": "B"})
    with pytest.raises(VersionMismatch) as err:
        await repo.update("people", 1, {"name": "C"}, expected_versions={1})
    assert err.value.current == 2
    with pytest.raises(VersionMismatch):
        await repo.delete("people", 1, expected_versions={1})
    assert await repo.get("people", 1) == {"id": 1, "version": 2, "email": "a@x.io", "name": "B"}
    assert (await repo.update("people", 1, {"name": "C"}, expected_versions={2}))["version"] == 3


async def test_missing_record_raises_not_found(repo: Repository) -> None:
    assert await repo.get("people", 5) is None
    for call in (
        repo.update("people", 5, {"name": "x"}),
        repo.replace("people", 5, {"name": "x"}),
        repo.delete("people", 5),
    ):
        with pytest.raises(RecordNotFound):
            await call


async def test_unique_is_case_insensitive_on_create_and_update(repo: Repository) -> None:
    await repo.create("people", {"email": "Ann@X.io", "name": "A"})
    await repo.create("people", {"email": "bob@x.io", "name": "B"})
    with pytest.raises(DuplicateKey):
        await repo.create("people", {"email": "ann@x.IO", "name": "A2"})
    with pytest.raises(DuplicateKey):
        await repo.update("people", 2, {"email": "ANN@x.io"})
    assert await repo.count("people") == 2
    assert (await repo.get("people", 2) or {})["email"] == "bob@x.io"
    # Changing one's own email's case is not a conflict with oneself.
    assert (await repo.update("people", 1, {"email": "ann@x.io"}))["email"] == "ann@x.io"


async def test_unique_value_is_freed_by_delete_and_by_change(repo: Repository) -> None:
    await repo.create("people", {"email": "a@x.io", "name": "A"})
    await repo.update("people", 1, {"email": "z@x.io"})
    await repo.create("people", {"email": "a@x.io", "name": "A again"})
    await repo.delete("people", 1)
    await repo.create("people", {"email": "Z@x.io", "name": "Z"})
    found = await repo.find_unique("people", "email", "z@X.IO")
    assert found is not None
    assert found["name"] == "Z"


async def test_list_filters_sorts_pages_and_counts(repo: Repository) -> None:
    for i, name in enumerate(["carol", "Alice", "bob", "alan", "Bea"]):
        await repo.create("people", {"email": f"{i}@x.io", "name": name, "active": i % 2 == 0})
    page = await repo.list("people", sort="name", skip=1, limit=2)
    assert [r["name"] for r in page.items] == ["Alice", "Bea"]
    assert page.total == 5
    page = await repo.list("people", sort="-name")
    assert [r["name"] for r in page.items] == ["carol", "bob", "Bea", "Alice", "alan"]
    page = await repo.list("people", filters=[Filter("name", "icontains", "AL")])
    assert [r["name"] for r in page.items] == ["Alice", "alan"]
    page = await repo.list("people", filters=[Filter("active", "eq", True)], sort="-id", limit=1)
    assert ([r["id"] for r in page.items], page.total) == ([5], 3)
    page = await repo.list("people", filters=[Filter("email", "ieq", "2@X.IO")])
    assert [r["name"] for r in page.items] == ["bob"]


async def test_list_sort_ties_follow_the_sort_direction(repo: Repository) -> None:
    # ORDER BY name, id (or name DESC, id DESC): an index read backwards, in any backend.
    for i in range(4):
        await repo.create("people", {"email": f"{i}@x.io", "name": "same"})
    assert [r["id"] for r in (await repo.list("people", sort="name")).items] == [1, 2, 3, 4]
    assert [r["id"] for r in (await repo.list("people", sort="-name")).items] == [4, 3, 2, 1]


async def test_an_updated_record_keeps_its_place_in_id_order(repo: Repository) -> None:
    for i in range(3):
        await repo.create("people", {"email": f"{i}@x.io", "name": f"p{i}"})
    await repo.update("people", 1, {"name": "changed"})
    assert [r["id"] for r in (await repo.list("people", sort="id")).items] == [1, 2, 3]
    await repo.delete("people", 2)
    assert [r["id"] for r in (await repo.list("people", sort="-id")).items] == [3, 1]


async def test_a_sorted_list_sees_every_write_since_the_last_one(repo: Repository) -> None:
    # The memory store keeps each sorted order between writes: every kind of write, a rolled
    # back transaction included, must show in the next list.
    for name in ("carol", "alice", "bob"):
        await repo.create("people", {"email": f"{name}@x.io", "name": name})

    def names(page: Page) -> list[str]:
        return [r["name"] for r in page.items]

    assert names(await repo.list("people", sort="name")) == ["alice", "bob", "carol"]
    await repo.update("people", 1, {"name": "aaron"})  # carol -> aaron moves to the front
    assert names(await repo.list("people", sort="name")) == ["aaron", "alice", "bob"]
    assert names(await repo.list("people", sort="-name", skip=1, limit=1)) == ["alice"]
    await repo.create("people", {"email": "zed@x.io", "name": "zed"})
    await repo.delete("people", 2)
    assert names(await repo.list("people", sort="name")) == ["aaron", "bob", "zed"]
    with pytest.raises(RuntimeError):
        async with repo.transaction("people") as tx:
            await tx.update("people", 3, {"name": "abel"})
            assert names(await tx.list("people", sort="name")) == ["aaron", "abel", "zed"]
            raise RuntimeError("roll back")
    page = await repo.list("people", sort="name")
    assert (names(page), page.total) == (["aaron", "bob", "zed"], 3)


async def test_list_refuses_unknown_sort_and_negative_paging(repo: Repository) -> None:
    with pytest.raises(ValueError, match="cannot be sorted"):
        await repo.list("people", sort="email")
    with pytest.raises(ValueError, match="negative"):
        await repo.list("people", skip=-1)


async def test_undeclared_collection_is_an_error(repo: Repository) -> None:
    with pytest.raises(UnknownCollection):
        await repo.create("nope", {})


async def test_500_concurrent_creates_get_500_distinct_ids(repo: Repository) -> None:
    records = await asyncio.gather(*(repo.create("orders", {"n": i}) for i in range(500)))
    ids = {r["id"] for r in records}
    assert len(ids) == 500
    assert ids == set(range(1, 501))
    assert await repo.count("orders") == 500


async def test_200_concurrent_creates_of_one_email_give_one_success(repo: Repository) -> None:
    async def attempt(i: int) -> bool:
        try:
            # Alternate the letter case: uniqueness is case-insensitive.
            email = "Same@X.io" if i % 2 else "same@x.io"
            await repo.create("people", {"email": email, "name": str(i)})
        except DuplicateKey:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(200)))
    assert sum(results) == 1
    assert await repo.count("people") == 1


async def test_transaction_that_raises_leaves_both_collections_as_they_were(
    repo: Repository,
) -> None:
    await repo.create("people", {"email": "a@x.io", "name": "A"})
    await repo.create("orders", {"person": 1, "total": 5})
    before_people = await repo.list("people")
    before_orders = await repo.list("orders")

    with pytest.raises(RuntimeError, match="boom"):
        async with repo.transaction("people", "orders") as tx:
            await tx.update("people", 1, {"name": "changed", "email": "new@x.io"})
            await tx.create("people", {"email": "b@x.io", "name": "B"})
            await tx.delete("orders", 1)
            await tx.create("orders", {"person": 2, "total": 9})
            raise RuntimeError("boom")

    assert await repo.list("people") == before_people
    assert await repo.list("orders") == before_orders
    # The unique index was restored too: the old email is still taken, the new ones are free.
    with pytest.raises(DuplicateKey):
        await repo.create("people", {"email": "A@x.io", "name": "dup"})
    await repo.create("people", {"email": "new@x.io", "name": "N"})
    await repo.create("people", {"email": "b@x.io", "name": "B"})


async def test_transaction_commits_when_the_block_succeeds(repo: Repository) -> None:
    async with repo.transaction("orders", "people") as tx:
        person = await tx.create("people", {"email": "a@x.io", "name": "A"})
        await tx.create("orders", {"person": person["id"]})
    assert await repo.count("people") == 1
    assert await repo.count("orders") == 1


async def test_transaction_is_isolated_from_readers_until_it_ends(repo: Repository) -> None:
    # Memory: the reader waits for the lock. Redis: the writes are not in Redis until commit.
    # Either way no reader sees a change that is then rolled back.
    await repo.create("people", {"email": "a@x.io", "name": "A"})
    inside = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        with pytest.raises(RuntimeError):
            async with repo.transaction("people") as tx:
                await tx.update("people", 1, {"name": "uncommitted"})
                inside.set()
                await release.wait()
                raise RuntimeError("roll back")

    task = asyncio.create_task(writer())
    await inside.wait()
    read = asyncio.create_task(repo.get("people", 1))
    await asyncio.sleep(0.01)
    release.set()
    await task
    assert (await read or {})["name"] == "A"
    assert (await repo.get("people", 1) or {})["name"] == "A"


async def test_memory_readers_wait_for_a_transaction_lock() -> None:
    repo = MemoryRepository()
    repo.declare(PEOPLE)
    await repo.create("people", {"email": "a@x.io", "name": "A"})
    async with repo.transaction("people") as tx:
        await tx.update("people", 1, {"name": "B"})
        read = asyncio.create_task(repo.get("people", 1))
        await asyncio.sleep(0.01)
        assert not read.done(), "a reader must wait for the transaction's lock"
    assert (await read or {})["name"] == "B"


async def test_transaction_rolls_back_on_cancellation(repo: Repository) -> None:
    started = asyncio.Event()

    async def writer() -> None:
        async with repo.transaction("orders") as tx:
            await tx.create("orders", {"n": 1})
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(writer())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await repo.count("orders") == 0


async def test_transactions_in_opposite_orders_do_not_deadlock(repo: Repository) -> None:
    async def move(first: str, second: str) -> None:
        async with repo.transaction(first, second) as tx:
            await tx.create(first, {"email": None, "name": "x"} if first == "people" else {})
            await asyncio.sleep(0)
            await tx.create(second, {"email": None, "name": "y"} if second == "people" else {})

    await asyncio.wait_for(
        asyncio.gather(
            *(move("people", "orders") if i % 2 else move("orders", "people") for i in range(50))
        ),
        timeout=5,
    )
    assert await repo.count("orders") == 50
    assert await repo.count("people") == 50


async def test_transaction_refuses_collections_it_did_not_lock(repo: Repository) -> None:
    with pytest.raises(UnknownCollection):
        async with repo.transaction("orders") as tx:
            await tx.create("people", {"email": "a@x.io", "name": "A"})
    assert await repo.count("people") == 0


async def test_deleted_record_returned_by_a_rolled_back_transaction_is_a_copy(
    repo: Repository,
) -> None:
    await repo.create("people", {"email": "a@x.io", "name": "A", "tags": ["x"]})
    with pytest.raises(RuntimeError):
        async with repo.transaction("people") as tx:
            deleted = await tx.delete("people", 1)
            deleted["tags"].append("leaked")
            raise RuntimeError
    assert (await repo.get("people", 1) or {})["tags"] == ["x"]


async def test_a_rolled_back_delete_keeps_the_records_in_id_order(repo: Repository) -> None:
    for i in range(4):
        await repo.create("orders", {"n": i})
    with pytest.raises(RuntimeError):
        async with repo.transaction("orders") as tx:
            await tx.delete("orders", 2)
            raise RuntimeError
    assert [r["id"] for r in (await repo.list("orders")).items] == [1, 2, 3, 4]
    page = await repo.list("orders", sort="-id", skip=1, limit=2)
    assert ([r["id"] for r in page.items], page.total) == ([3, 2], 4)
