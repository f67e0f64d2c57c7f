"""The dependency pipeline in detail: its breaker counts only the dependency's failures and then
refuses without calling; its probe half-opens the breaker as soon as the dependency answers;
its bulkhead lets a burst queue briefly but refuses what would queue behind a stall; reads are
retried within a budget and a deadline, writes never; a call is cut to what its request has
left."""

from __future__ import annotations

import asyncio

import pytest

from app.core import deadline
from app.core.breaker import BreakerConfig, BreakerRegistry, BreakerState
from app.core.dependency import Dependency
from app.core.exceptions import DeadlineExceeded
from app.core.retry_budget import RetryBudget
from tests.fakes import state_of


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

    async def work(self, within_seconds: float = 1.0) -> str:
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
    assert state_of(dependency.breaker) is BreakerState.OPEN


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

    async def answered_error(within_seconds: float) -> None:
        raise Answered

    for _ in range(10):
        with pytest.raises(Answered):
            await dependency.call(answered_error)
    assert state_of(dependency.breaker) is BreakerState.CLOSED
    await dependency.close()


async def test_the_probe_half_opens_the_breaker_as_soon_as_the_dependency_answers() -> None:
    backend = Backend()
    dependency = _dependency(backend)
    await _open(dependency, backend)
    for _ in range(500):  # a busy machine may run the probe late
        if backend.pings >= 2:
            break
        await asyncio.sleep(0.01)
    assert backend.pings >= 2  # probing, with backoff, while it is down
    assert state_of(dependency.breaker) is BreakerState.OPEN
    assert dependency.snapshot()["probing"] is True
    backend.down = False
    for _ in range(100):
        if dependency.breaker.state is not BreakerState.OPEN:
            break
        await asyncio.sleep(0.01)
    # Half-open after a probe, not after the 600 s open period; two trials close it.
    assert state_of(dependency.breaker) is BreakerState.HALF_OPEN
    assert await dependency.call(backend.work) == "ok"
    assert await dependency.call(backend.work) == "ok"
    assert state_of(dependency.breaker) is BreakerState.CLOSED
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
    assert state_of(dependency.breaker) is BreakerState.OPEN
    pings = backend.pings
    for _ in range(500):
        if backend.pings > pings:
            break
        await asyncio.sleep(0.01)
    assert backend.pings > pings
    await dependency.close()


async def test_the_bulkhead_queues_a_burst_briefly_and_refuses_behind_a_stall() -> None:
    backend = Backend()
    # Half a second: long enough that a busy machine still frees the slot within the wait.
    dependency = _dependency(backend, max_in_flight=2, timeout_seconds=0.5)
    release = asyncio.Event()

    async def stalled(within_seconds: float) -> str:
        await release.wait()
        return "late"

    held = [asyncio.create_task(dependency.call(stalled)) for _ in range(2)]
    await asyncio.sleep(0)
    assert dependency.in_flight == 2
    # A third call waits for a slot within its own timeout, then is refused, never having
    # reached the dependency: it does not queue behind the stall for longer than that.
    with pytest.raises(Refused):
        await dependency.call(backend.work)
    assert backend.calls == 0
    # A slot freed within the wait is taken, and the wait came out of the call's time.
    given: list[float] = []

    async def measure(within_seconds: float) -> str:
        given.append(within_seconds)
        return "ok"

    waiting = asyncio.create_task(dependency.call(measure))
    await asyncio.sleep(0.01)
    release.set()
    assert await waiting == "ok"
    assert given[0] < 0.5
    assert [await task for task in held] == ["late", "late"]
    assert dependency.in_flight == 0
    # Refusals by the bulkhead are not the dependency failing: the breaker stays closed.
    assert state_of(dependency.breaker) is BreakerState.CLOSED
    await dependency.close()


async def test_a_cancelled_call_frees_its_slot_and_counts_for_nothing() -> None:
    backend = Backend()
    dependency = _dependency(backend, max_in_flight=1)

    async def forever(within_seconds: float) -> None:
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


class Flaky:
    """Fails its first `failures` calls with an outage, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def read(self, within_seconds: float) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise Outage
        return "read"


async def test_a_read_that_met_a_blip_is_retried_and_a_write_is_not() -> None:
    dependency = _dependency(Backend(), retry_backoff_seconds=(0.001, 0.002))
    read = Flaky(failures=1)
    assert await dependency.call(read.read, idempotent=True) == "read"
    assert read.calls == 2
    write = Flaky(failures=1)
    with pytest.raises(Outage):
        await dependency.call(write.read)  # not idempotent: its reply may have been lost
    assert write.calls == 1
    await dependency.close()


async def test_the_budget_caps_retries_during_an_outage_at_a_tenth_of_the_calls() -> None:
    budget = RetryBudget(ratio=0.1, floor=2, window_seconds=60)
    dependency = _dependency(
        Backend(),
        retries=3,
        retry_backoff_seconds=(0.0001, 0.0002),
        retry_budget=budget,
        # A breaker that never opens, so only the budget holds the retries back.
        probe=None,
    )
    dependency.breaker.config = BreakerConfig(window_size=100, min_calls=100, failure_rate=1)
    down = Flaky(failures=10**9)
    for _ in range(100):
        with pytest.raises(Outage):
            await dependency.call(down.read, idempotent=True)
    # 100 calls would have been 400 attempts with 3 retries each; the budget allows
    # floor + 10% of the calls.
    assert 100 <= down.calls <= 100 + 2 + 10 + 1
    await dependency.close()


async def test_no_retry_while_the_breaker_is_open() -> None:
    backend = Backend()
    dependency = _dependency(backend, retry_backoff_seconds=(0.0001, 0.0002), probe=None)
    await _open(dependency, backend)
    reached = backend.calls
    with pytest.raises(Refused):
        await dependency.call(backend.work, idempotent=True)
    assert backend.calls == reached
    await dependency.close()


async def test_a_call_gets_only_what_its_request_has_left() -> None:
    backend = Backend()
    dependency = _dependency(backend, timeout_seconds=5.0)
    given: list[float] = []

    async def measure(within_seconds: float) -> None:
        given.append(within_seconds)

    budget, token = deadline.start(0.5)
    try:
        await dependency.call(measure)
        assert 0 < given[0] <= 0.5  # not the dependency's own 5 s
        budget.at = asyncio.get_running_loop().time() + 0.001  # almost out of time
        with pytest.raises(DeadlineExceeded):
            await dependency.call(backend.work)
        assert backend.calls == 0  # not started: its answer would come too late
        budget.disarm()  # a started stream has no deadline
        await dependency.call(measure)
        assert given[-1] == 5.0
    finally:
        deadline.end(token)
    await dependency.close()


async def test_a_call_cut_short_by_the_deadline_is_not_the_dependency_failing() -> None:
    dependency = _dependency(Backend(), timeout_seconds=5.0, probe=None)

    async def slow(within_seconds: float) -> None:
        await asyncio.sleep(within_seconds)
        raise TimeoutError

    budget, token = deadline.start(0.02)
    try:
        for _ in range(6):
            budget.at = asyncio.get_running_loop().time() + 0.02
            with pytest.raises(DeadlineExceeded):
                await dependency.call(slow)
    finally:
        deadline.end(token)
    assert state_of(dependency.breaker) is BreakerState.CLOSED
    await dependency.close()


async def test_a_stall_is_not_retried_only_a_reset_is() -> None:
    class Reset(Outage):
        pass

    dependency = _dependency(
        Backend(),
        retry_backoff_seconds=(0.0001, 0.0002),
        is_retriable=lambda exc: isinstance(exc, Reset),
    )
    stalls = 0

    async def stalled(within_seconds: float) -> None:
        nonlocal stalls
        stalls += 1
        raise Outage  # timed out: a second try would wait as long again

    with pytest.raises(Outage):
        await dependency.call(stalled, idempotent=True)
    assert stalls == 1
    resets = 0

    async def reset_once(within_seconds: float) -> str:
        nonlocal resets
        resets += 1
        if resets == 1:
            raise Reset
        return "read"

    assert await dependency.call(reset_once, idempotent=True) == "read"
    assert resets == 2
    await dependency.close()
