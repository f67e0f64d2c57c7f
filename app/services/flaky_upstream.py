"""The flaky demo's upstream: a dependency that answers after a moment, failing as often as the
request asks, reached through its own pipeline (the `flaky` dependency) like any other."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from app.core.dependency import Dependency
from app.core.exceptions import SimulatedFailure


class SimulatedUpstream:
    """An upstream service in miniature: `fetch` takes `latency_seconds`, then fails with
    probability `failure_rate` (`SimulatedFailure`, 500) or answers."""

    def __init__(
        self,
        dependency: Dependency,
        *,
        latency_seconds: float = 0.002,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.dependency = dependency
        self._latency = latency_seconds
        self._chance = chance

    async def fetch(self, failure_rate: float) -> dict[str, Any]:
        """One call through the `flaky` pipeline: its breaker refuses while it is open
        (`BreakerOpen`, 503), an injected fault acts on it, a failure counts for it."""

        async def run(seconds: float) -> dict[str, Any]:
            async with asyncio.timeout(seconds):
                await asyncio.sleep(self._latency)
            if self._chance() < failure_rate:
                raise SimulatedFailure(f"Simulated failure (failure_rate={failure_rate:g}).")
            return {"status": "ok", "failure_rate": failure_rate}

        return await self.dependency.call(run)
