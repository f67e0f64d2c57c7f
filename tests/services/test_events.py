"""The event bus: ordering, drop-oldest, handler isolation, history and resumption."""

from __future__ import annotations

import asyncio

import pytest

from app.services.events import EventBus


async def _drain(subscription, count: int) -> list:
    return [await asyncio.wait_for(subscription.get(), 1) for _ in range(count)]


async def test_each_subscriber_gets_events_in_publish_order() -> None:
    bus = EventBus()
    first, second = bus.stream("*"), bus.stream("*")
    for i in range(5):
        await bus.publish("t", i)
    assert [e.data for e in await _drain(first, 5)] == [0, 1, 2, 3, 4]
    assert [e.data for e in await _drain(second, 5)] == [0, 1, 2, 3, 4]


async def test_ids_increase_and_events_have_timestamps() -> None:
    bus = EventBus()
    events = [await bus.publish("t", None) for _ in range(3)]
    assert [e.id for e in events] == [1, 2, 3]
    assert all(e.ts.endswith("+00:00") for e in events)


async def test_patterns_select_topics() -> None:
    bus = EventBus()
    users = bus.stream("user.*")
    await bus.publish("user.created", 1)
    await bus.publish("order.created", 2)
    await bus.publish("user.deleted", 3)
    assert [e.topic for e in await _drain(users, 2)] == ["user.created", "user.deleted"]


async def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    bus = EventBus(queue_size=3)
    slow = bus.stream("*")
    fast = bus.stream("*")
    for i in range(5):
        await bus.publish("t", i)
        await fast.get()  # this one keeps up
    assert [e.data for e in await _drain(slow, 3)] == [2, 3, 4]
    assert slow.dropped == 2
    assert fast.dropped == 0
    assert bus.dropped == 2


async def test_publishing_never_waits_on_a_subscriber() -> None:
    bus = EventBus(queue_size=10)
    bus.stream("*")  # never read
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(10_000):
        await bus.publish("t", i)
    assert loop.time() - start < 2


async def test_a_handler_that_raises_is_isolated() -> None:
    bus = EventBus()
    seen: list[int] = []

    def broken(event) -> None:
        raise RuntimeError("boom")

    async def working(event) -> None:
        seen.append(event.data)

    stop_broken = bus.subscribe("*", broken)
    stop_working = bus.subscribe("*", working)
    for i in range(3):
        await bus.publish("t", i)
    await stop_working()  # drains what was queued before returning
    await stop_broken()
    assert seen == [0, 1, 2]


async def test_history_is_bounded_and_filterable() -> None:
    bus = EventBus(history_size=5)
    for i in range(8):
        await bus.publish("a" if i % 2 else "b", i)
    assert [e.data for e in bus.history()] == [3, 4, 5, 6, 7]
    assert [e.data for e in bus.history("a")] == [3, 5, 7]
    assert [e.data for e in bus.history(limit=2)] == [6, 7]


async def test_since_returns_missed_events_or_reports_a_gap() -> None:
    bus = EventBus(history_size=5)
    for i in range(8):
        await bus.publish("t", i)  # ids 1..8; history keeps 4..8
    missed, gap = bus.since(5)
    assert ([e.id for e in missed], gap) == ([6, 7, 8], False)
    missed, gap = bus.since(3)
    assert ([e.id for e in missed], gap) == ([4, 5, 6, 7, 8], False)
    missed, gap = bus.since(1)
    assert gap
    assert [e.id for e in missed] == [4, 5, 6, 7, 8]
    assert bus.since(8) == ([], False)


async def test_closing_streams_keeps_handlers_until_close() -> None:
    bus = EventBus()
    stream = bus.stream("*")
    seen: list[int] = []
    bus.subscribe("*", lambda e: seen.append(e.data))
    assert bus.close_streams() == 1
    assert await stream.get() is None
    await bus.publish("t", 1)
    await bus.close()
    assert seen == [1]
    assert bus.subscriber_counts() == {}


async def test_subscription_context_manager_unsubscribes() -> None:
    bus = EventBus()
    async with bus.stream("x.*") as subscription:
        assert bus.subscriber_counts() == {"x.*": 1}
        await bus.publish("x.y", 1)
        assert (await subscription.get()).data == 1
    assert bus.subscriber_counts() == {}


@pytest.mark.parametrize("count", [1, 50])
async def test_many_subscribers_all_receive(count: int) -> None:
    bus = EventBus()
    subs = [bus.stream("*") for _ in range(count)]
    await bus.publish("t", "hello")
    received = [await s.get() for s in subs]
    assert [e.data for e in received] == ["hello"] * count
