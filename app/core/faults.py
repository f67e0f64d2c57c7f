"""Faults injected into a dependency's pipeline on purpose (chaos engineering, as Polly's chaos
strategies and podinfo's chaos endpoints do): so a learner, a test or a drill can watch the
breaker, the bulkhead, the retries and the stale reads work against the real code.

A fault sits inside the pipeline, after the breaker and the bulkhead and before the call, so
everything around the call runs as it would in a real outage:
- `latency`: every call waits `latency_seconds` first (past its timeout: it times out);
- `error`: a share `error_rate` of calls fail as if the connection were reset;
- `outage`: every call fails, and so does the recovery probe, as if the dependency were gone.
Each fault ends by itself after `seconds` (at most 5 minutes): a forgotten drill cannot
outlive its welcome. Injecting is admin-only and not mounted in production (`admin` routes).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import Gauge

from app.core.logging import get_logger

log = get_logger(__name__)

FaultKind = Literal["latency", "error", "outage"]
FAULT_KINDS: tuple[FaultKind, ...] = ("latency", "error", "outage")
MAX_FAULT_SECONDS = 300

FAULTS_ACTIVE = Gauge(
    "faults_active",
    "1 while a fault is injected into a dependency, by dependency and kind.",
    ["dependency", "kind"],
    multiprocess_mode="liveall",
)


class InjectedFault(ConnectionError):
    """The failure an injected `error` or `outage` makes a call raise (a `ConnectionError`,
    as the real one would be)."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: its kind, its parameters and when it ends (the event loop's clock)."""

    kind: FaultKind
    ends_at: float
    latency_seconds: float = 0.0
    error_rate: float = 1.0

    def as_dict(self, now: float) -> dict[str, Any]:
        """For `/resilience` and the admin route."""
        return {
            "kind": self.kind,
            "seconds_left": round(max(0.0, self.ends_at - now), 1),
            "latency_ms": round(self.latency_seconds * 1000) if self.kind == "latency" else None,
            "error_rate": self.error_rate if self.kind == "error" else None,
        }


class FaultSlot:
    """The fault of one dependency, if any; it expires by itself."""

    def __init__(self, dependency: str) -> None:
        self.dependency = dependency
        self.fault: Fault | None = None
        self._expiry: asyncio.TimerHandle | None = None

    def inject(
        self,
        kind: FaultKind,
        seconds: float,
        *,
        latency_seconds: float = 0.0,
        error_rate: float = 1.0,
        actor: str = "",
    ) -> Fault:
        """Start `kind` for `seconds` (replacing any fault already there)."""
        if kind not in FAULT_KINDS or not 0 < seconds <= MAX_FAULT_SECONDS:
            raise ValueError(f"a fault is one of {FAULT_KINDS}, for 0-{MAX_FAULT_SECONDS} s")
        self.clear(reason="replaced")
        loop = asyncio.get_running_loop()
        fault = Fault(kind, loop.time() + seconds, latency_seconds, error_rate)
        self.fault = fault
        self._expiry = loop.call_later(seconds, self.clear, "expired")
        FAULTS_ACTIVE.labels(dependency=self.dependency, kind=kind).set(1)
        log.warning(
            "fault_injected",
            dependency=self.dependency,
            kind=kind,
            seconds=seconds,
            latency_ms=round(latency_seconds * 1000) if kind == "latency" else None,
            error_rate=error_rate if kind == "error" else None,
            actor=actor,
        )
        return fault

    def clear(self, reason: str = "cleared") -> bool:
        """End the fault now; True if there was one."""
        fault, self.fault = self.fault, None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if fault is None:
            return False
        FAULTS_ACTIVE.labels(dependency=self.dependency, kind=fault.kind).set(0)
        log.warning("fault_ended", dependency=self.dependency, kind=fault.kind, reason=reason)
        return True

    async def apply(self, within_seconds: float) -> None:
        """What the fault does to one call given `within_seconds`: nothing, a wait (a
        `TimeoutError` once the wait would pass the call's time), or `InjectedFault`."""
        fault = self.fault
        if fault is None:
            return
        if fault.kind == "outage":
            raise InjectedFault(f"{self.dependency}: injected outage")
        if fault.kind == "error":
            if random.random() < fault.error_rate:  # noqa: S311 - a drill, not secrets
                raise InjectedFault(f"{self.dependency}: injected error")
            return
        if fault.latency_seconds >= within_seconds:
            await asyncio.sleep(within_seconds)
            raise TimeoutError(f"{self.dependency}: injected latency past the call's time")
        await asyncio.sleep(fault.latency_seconds)

    def snapshot(self) -> dict[str, Any] | None:
        """The active fault, or None."""
        fault = self.fault
        return None if fault is None else fault.as_dict(asyncio.get_running_loop().time())
