"""The retry budget with a fake clock: a floor, a share of the calls, and a window that slides."""

from __future__ import annotations

from app.core.retry_budget import RetryBudget
from tests.fakes import FakeClock


def test_retries_are_a_floor_plus_a_share_of_recent_calls(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.1, floor=2, window_seconds=10, clock=clock)
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]  # the floor alone
    for _ in range(30):
        budget.called()
    assert budget.left() == 3  # 2 + 10% of 30, minus the 2 spent
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]


def test_the_window_forgets_old_calls_and_retries(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, floor=0, window_seconds=10, clock=clock)
    for _ in range(10):
        budget.called()
    for _ in range(5):
        assert budget.try_spend()
    assert not budget.try_spend()
    clock.now = 10.5  # the second that held them is out of the window
    assert budget.left() == 0
    budget.called()
    budget.called()
    assert budget.try_spend()
    assert not budget.try_spend()
