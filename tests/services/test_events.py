"""The event bus over both event logs (memory, and a real redis-server's stream): ordering,
drop-oldest, handler isolation, history and resumption that never goes silent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from app.memory.event_log import MemoryEventLog
from app.redis.client import RedisClient
from app.redis.event_log import RedisEventLog
from app.services.events import EventBus, Gap, Subscription
from app.stores.events import Event, format_event_id, parse_event_id

BusFactory = Callable[..., Awaitable[EventBus]]


@pytest.fixture(params=["memory", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    buses: list[EventBus] = []
    clients: list[RedisClient] = []

    async def make(
        history_size: int = 1000, queue_size: int = 256, history_bytes: int = 8 * 1_048_576
    ) -> EventBus:
        if request.param == "memory":
            log: Any = MemoryEventLog(history_size=history_size, history_bytes=history_bytes)
        else:
            client = RedisClient(
                request.getfixturevalue("redis_url"), timeout_seconds=5.0, max_connections=8
            )
            clients.append(client)
            log = RedisEventLog(client, history_size=history_size, history_bytes=history_bytes)
        bus = EventBus(log, queue_size=queue_size)
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()
    for client in clients:
        await client.close()


async def _drain(subscription: Subscription, count: int) -> list[Event]:
    events = []
    for _ in range(count):
        event = await asyncio.wait_for(subscription.get(), 5)
        assert isinstance(event, Event)
        events.append(event)
    return events


async def test_each_subscriber_gets_events_in_publish_order(make_bus: BusFactory) -> None:
    bus = await make_bus()
    first, second = bus.stream("*"), bus.stream("*")
    for i in range(5):
        await bus.publish("t", i)
    assert [e.data for e in await _drain(first, 5)] == [0, 1, 2, 3, 4]
    assert [e.data for e in await _drain(second, 5)] == [0, 1, 2, 3, 4]


async def test_ids_are_ordered_positions_and_events_have_timestamps(make_bus: BusFactory) -> None:
    bus = await make_bus()
    events = [await bus.publish("t", None) for _ in range(3)]
    positions = [_position(e.id) for e in events]
    assert positions == sorted(positions)
    assert len(set(positions)) == 3
    assert [format_event_id(p) for p in positions if p] == [e.id for e in events]
    assert all(e.ts.endswith("+00:00") for e in events)


def test_event_ids_parse_strictly() -> None:
    assert parse_event_id("1764115200000-3") == (1764115200000, 3)
    assert parse_event_id("42") == (42, 0)
    for bad in ("", "-", "1-", "-1", "1-2-3", "abc", "١٢", "1" * 21, " 1", "1 "):
        assert parse_event_id(bad) is None, bad


async def test_patterns_select_topics(make_bus: BusFactory) -> None:
    bus = await make_bus()
    users = bus.stream("user.*")
    await bus.publish("user.created", 1)
    await bus.publish("order.created", 2)
    await bus.publish("user.deleted", 3)
    assert [e.topic for e in await _drain(users, 2)] == ["user.created", "user.deleted"]


async def test_a_full_queue_drops_the_oldest_counts_it_and_says_so_in_its_place() -> None:
    bus = EventBus(MemoryEventLog(), queue_size=3)
    await bus.start()
    slow = bus.stream("*")
    fast = bus.stream("*")
    published = []
    for i in range(5):
        published.append(await bus.publish("t", i))
        await fast.get()  # this one keeps up
    # Never silent: the reader that fell behind gets a gap where the dropped events were.
    gap = await slow.get()
    assert gap == Gap(dropped=2, first_id=published[0].id, last_id=published[1].id)
    assert [e.data for e in await _drain(slow, 3)] == [2, 3, 4]
    assert slow.dropped == 2
    assert fast.dropped == 0
    assert bus.dropped == 2


async def test_publishing_never_waits_on_a_subscriber(make_bus: BusFactory) -> None:
    bus = await make_bus(queue_size=10)
    never_read = bus.stream("*")
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(1000):
        await bus.publish("t", i)
    assert loop.time() - start < 5
    await asyncio.sleep(0.2)  # Redis: let the reader hand everything over
    assert never_read.dropped >= 990


async def test_a_handler_that_raises_is_isolated(make_bus: BusFactory) -> None:
    bus = await make_bus()
    seen: list[int] = []
    done = asyncio.Event()

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    async def working(event: Event) -> None:
        seen.append(event.data)
        if len(seen) == 3:
            done.set()

    stop_broken = bus.subscribe("*", broken)
    stop_working = bus.subscribe("*", working)
    for i in range(3):
        await bus.publish("t", i)
    await asyncio.wait_for(done.wait(), 5)
    await stop_working()
    await stop_broken()
    assert seen == [0, 1, 2]


async def test_history_is_bounded_and_filterable(make_bus: BusFactory) -> None:
    bus = await make_bus(history_size=5)
    for i in range(8):
        await bus.publish("a" if i % 2 else "b", i)
    assert [e.data for e in await bus.history()] == [3, 4, 5, 6, 7]
    assert [e.data for e in await bus.history("a")] == [3, 5, 7]
    assert [e.data for e in await bus.history(limit=2)] == [6, 7]


async def test_history_is_bounded_by_bytes_of_data_too(make_bus: BusFactory) -> None:
    bus = await make_bus(history_size=1000, history_bytes=100)
    for i in range(10):
        await bus.publish("t", "x" * 28 + str(i))  # 31 bytes of JSON each: three fit in 100
    assert [e.data[-1] for e in await bus.history()] == ["7", "8", "9"]
    page = await bus.history_page(limit=10, max_bytes=70)
    assert ([e.data[-1] for e in page.events], page.truncated) == (["8", "9"], True)


async def test_resume_replays_what_was_missed_or_says_what_is_gone(make_bus: BusFactory) -> None:
    bus = await make_bus(history_size=5)
    events = [await bus.publish("t", i) for i in range(8)]  # history keeps the last five
    ids = [e.id for e in events]

    resume = await bus.resume(ids[4])
    assert ([e.id for e in resume.events], resume.gap) == (ids[5:], None)
    resume = await bus.resume(ids[2])  # the one just before the history: nothing lost
    assert ([e.id for e in resume.events], resume.gap) == (ids[3:], None)
    resume = await bus.resume(ids[0])
    assert [e.id for e in resume.events] == ids[3:]
    assert resume.gap is not None
    assert resume.gap["oldest_available_id"] == ids[3]
    assert "dropped" in resume.gap["detail"]
    assert (await bus.resume(ids[7])).events == []
    assert (await bus.resume(ids[7])).gap is None
    everything = await bus.resume("0")
    assert [e.id for e in everything.events] == ids[3:]
    assert everything.gap is not None  # some of everything is gone


@pytest.mark.parametrize("last_event_id", ["99999999999999-0", "not-an-id", "٣", "1" * 200])
async def test_an_id_that_cannot_be_placed_gets_a_gap_then_live_events(
    make_bus: BusFactory, last_event_id: str
) -> None:
    bus = await make_bus()
    await bus.publish("t", "old")
    resume = await bus.resume(last_event_id)
    assert resume.events == []
    assert resume.gap is not None
    assert resume.gap["last_event_id"] == last_event_id[:64]
    assert "live events follow" in resume.gap["detail"]


async def test_an_id_from_an_earlier_run_replays_this_run_after_a_gap() -> None:
    earlier = EventBus(MemoryEventLog(clock_ms=lambda: 1_000))
    await earlier.start()
    old = await earlier.publish("t", "before the restart")
    now = EventBus(MemoryEventLog(clock_ms=lambda: 2_000))
    await now.start()
    new = await now.publish("t", "after the restart")
    assert parse_event_id(new.id) > parse_event_id(old.id)  # type: ignore[operator]
    resume = await now.resume(old.id)
    assert [e.id for e in resume.events] == [new.id]
    assert resume.gap is not None
    assert "before this server started" in resume.gap["detail"]


async def test_closing_streams_keeps_handlers_until_close(make_bus: BusFactory) -> None:
    bus = await make_bus()
    stream = bus.stream("*")
    seen: list[int] = []
    bus.subscribe("*", lambda e: seen.append(e.data))
    assert bus.close_streams() == 1
    assert await stream.get() is None
    await bus.publish("t", 1)
    await asyncio.sleep(0.2)
    await bus.close()
    assert seen == [1]
    assert bus.subscriber_counts() == {}


async def test_subscription_context_manager_unsubscribes(make_bus: BusFactory) -> None:
    bus = await make_bus()
    async with bus.stream("x.*") as subscription:
        assert bus.subscriber_counts() == {"x.*": 1}
        await bus.publish("x.y", 1)
        assert (await _drain(subscription, 1))[0].data == 1
    assert bus.subscriber_counts() == {}


@pytest.mark.parametrize("count", [1, 50])
async def test_many_subscribers_all_receive(make_bus: BusFactory, count: int) -> None:
    bus = await make_bus()
    subs = [bus.stream("*") for _ in range(count)]
    await bus.publish("t", "hello")
    received = [(await _drain(s, 1))[0] for s in subs]
    assert [e.data for e in received] == ["hello"] * count


async def test_two_replicas_see_one_stream_in_one_order(redis_url: str) -> None:
    clients = [RedisClient(redis_url, timeout_seconds=5.0, max_connections=8) for _ in range(2)]
    buses = [EventBus(RedisEventLog(c, history_size=1000)) for c in clients]
    for bus in buses:
        await bus.start()
    streams = [bus.stream("*") for bus in buses]
    published = await asyncio.gather(*(buses[i % 2].publish("t", i) for i in range(40)))
    order = sorted(published, key=lambda e: e.position)
    for stream in streams:
        assert [e.id for e in await _drain(stream, 40)] == [e.id for e in order]
    for bus in buses:
        await bus.close()
    for client in clients:
        await client.close()


async def test_recent_history_reads_only_what_it_needs_on_redis(redis_url: str) -> None:
    client = RedisClient(redis_url, timeout_seconds=5.0, max_connections=8)
    log = RedisEventLog(client, history_size=1000)
    bus = EventBus(log)
    await bus.start()
    for i in range(450):
        await bus.publish("rare" if i % 150 == 0 else "common", i)
    assert [e.data for e in await bus.history("common", 3)] == [447, 448, 449]
    assert [e.data for e in await bus.history("rare", 10)] == [0, 150, 300]
    assert len(await bus.history("*", 1000)) == 450
    await bus.close()
    await client.close()


def _position(event_id: str) -> tuple[int, int]:
    position = parse_event_id(event_id)
    assert position is not None, event_id
    return position
