"""Fakes shared by the unit tests."""

from __future__ import annotations


class FakeClock:
    """A clock the test moves by hand (`clock.now += 5`) instead of sleeping."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
