"""The dependency pipeline in detail: its breaker counts only the dependency's failures and then
refuses without calling; its probe half-opens the breaker as soon as the dependency answers;
its bulkhead lets a burst queue briefly but refuses what would queue behind a stall."""

from __future__ import annotations

import asyncio

import pytest

from app.core.breaker import BreakerConfig, BreakerRegistry, BreakerState
from app.core.dependency import Dependency


class Refused(Exception):
    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Outage(Exception):
    pass


class Answered(Exception):
    """The dependency answered with an error: not an outage."""


class Backend:
    """A dependency that fails while `down`, counting the calls that reached it."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0
        self.pings = 0

    async def work(self) -> str:
        self.calls += 1
        if self.down:
            raise Outage
        return "ok"

    async def ping(self) -> None:
        self.pings += 1
        if self.down:
            raise Outage


def _dependency(backend: Backend, **options: object) -> Dependency:
    breakers = BreakerRegistry(
        BreakerConfig(window_size=4, min_calls=4, open_seconds=600, half_open_calls=2)
    )
    settings: dict[str, object] = {
        "max_in_flight": 4,
        "refuse": Refused,
        "is_failure": lambda exc: isinstance(exc, Outage),
        "probe": backend.ping,
        "probe_timeout_seconds": 0.5,
        "probe_backoff_seconds": (0.01, 0.05),
        **options,
    }
    return Dependency("store", breakers, **settings)  # type: ignore[arg-type]


async def _open(dependency: Dependency, backend: Backend) -> None:
    backend.down = True
    for _ in range(4):
        with pytest.raises(Outage):
            await dependency.call(backend.work)
    assert dependency.breaker.state is BreakerState.OPEN


async def test_an_open_breaker_refuses_without_calling_and_says_when_to_retry() -> None:
    backend = Backend()
    dependency = _dependency(backend, probe=None)
    await _open(dependency, backend)
    reached = backend.calls
    with pytest.raises(Refused) as refused:
        await dependency.call(backend.work)
    assert backend.calls == reached  # the dependency was not called
    assert refused.value.retry_after >= 1
    await dependency.close()


async def test_errors_the_dependency_answers_with_never_open_its_breaker() -> None:
    backend = Backend()
    dependency = _dependency(backend)

    async def answered_error() -> None:
        raise Answered

    for _ in range(10):
        with pytest.raises(Answered):
            await dependency.call(answered_error)
    assert dependency.breaker.state is BreakerState.CLOSED
    await dependency.close()


async def test_the_probe_half_opens_the_breaker_as_soon_as_the_dependency_answers() -> None:
    backend = Backend()
    dependency = _dependency(backend)
    await _open(dependency, backend)
    await asyncio.sleep(0.1)
    assert backend.pings >= 2  # probing, with backoff, while it is down
    assert dependency.breaker.state is BreakerState.OPEN
    assert dependency.snapshot()["probing"] is True
    backend.down = False
    for _ in range(100):
        if dependency.breaker.state is not BreakerState.OPEN:
            break
        await asyncio.sleep(0.01)
    # Half-open after a probe, not after the 600 s open period; two trials close it.
    assert dependency.breaker.state is BreakerState.HALF_OPEN
    assert await dependency.call(backend.work) == "ok"
    assert await dependency.call(backend.work) == "ok"
    assert dependency.breaker.state is BreakerState.CLOSED
    assert dependency.snapshot()["probing"] is False
    await dependency.close()


async def test_a_failed_trial_reopens_and_probing_starts_again() -> None:
    backend = Backend()
    dependency = _dependency(backend)
    await _open(dependency, backend)
    backend.down = False
    for _ in range(100):
        if dependency.breaker.state is BreakerState.HALF_OPEN:
            break
        await asyncio.sleep(0.01)
    backend.down = True
    with pytest.raises(Outage):
        await dependency.call(backend.work)
    assert dependency.breaker.state is BreakerState.OPEN
    pings = backend.pings
    await asyncio.sleep(0.1)
    assert backend.pings > pings
    await dependency.close()


async def test_the_bulkhead_queues_a_burst_briefly_and_refuses_behind_a_stall() -> None:
    backend = Backend()
    dependency = _dependency(backend, max_in_flight=2, max_wait_seconds=0.05)
    release = asyncio.Event()

    async def stalled() -> str:
        await release.wait()
        return "late"

    held = [asyncio.create_task(dependency.call(stalled)) for _ in range(2)]
    await asyncio.sleep(0)
    assert dependency.in_flight == 2
    # A third call waits for a slot, then is refused: it does not queue behind the stall.
    with pytest.raises(Refused):
        await dependency.call(backend.work)
    assert backend.calls == 0
    # A slot freed within the wait is taken: a burst on a healthy dependency goes through.
    waiting = asyncio.create_task(dependency.call(backend.work))
    await asyncio.sleep(0)
    release.set()
    assert await waiting == "ok"
    assert [await task for task in held] == ["late", "late"]
    assert dependency.in_flight == 0
    # Refusals by the bulkhead are not the dependency failing: the breaker stays closed.
    assert dependency.breaker.state is BreakerState.CLOSED
    await dependency.close()


async def test_a_cancelled_call_frees_its_slot_and_counts_for_nothing() -> None:
    backend = Backend()
    dependency = _dependency(backend, max_in_flight=1)

    async def forever() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(dependency.call(forever))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dependency.in_flight == 0
    assert await dependency.call(backend.work) == "ok"
    assert dependency.breaker.snapshot()["calls_in_window"] == 1
    await dependency.close()
