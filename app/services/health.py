"""Component health checks, each bounded by a timeout so one hung component cannot hang a probe."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from app.core.logging import get_logger

log = get_logger(__name__)

Status = Literal["ok", "degraded", "fail"]
# A check returns details (ok), raises (fail), or returns `Degraded(details)`; it may be a
# coroutine function or a plain one (a component's `stats` method).
CheckFunction = Callable[[], Awaitable[Any] | Any]


@dataclass(frozen=True, slots=True)
class Degraded:
    """Returned by a check that works but not fully (a breaker open, a pool restarting)."""

    detail: Any


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one component check."""

    name: str
    status: Status
    critical: bool
    latency_ms: float
    detail: Any = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used by the probes."""
        return {
            "name": self.name,
            "status": self.status,
            "critical": self.critical,
            "latency_ms": self.latency_ms,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class _Check:
    name: str
    run: CheckFunction
    critical: bool
    degraded_if: Callable[[], bool] | None


class HealthChecker:
    """Runs registered checks concurrently, each within `timeout_seconds`."""

    def __init__(self, timeout_seconds: float = 1.0) -> None:
        self.timeout_seconds = timeout_seconds
        self._checks: list[_Check] = []

    def register(
        self,
        name: str,
        check: CheckFunction,
        *,
        critical: bool = False,
        degraded_if: Callable[[], bool] | None = None,
    ) -> None:
        """Add a component check; critical ones decide readiness. `degraded_if`, asked after a
        check succeeded, marks the component as working but not fully."""
        self._checks.append(_Check(name, check, critical, degraded_if))

    async def _run(self, check: _Check) -> CheckResult:
        start = time.perf_counter()
        status: Status
        try:
            async with asyncio.timeout(self.timeout_seconds):
                detail = check.run()
                if inspect.isawaitable(detail):
                    detail = await detail
            if isinstance(detail, Degraded):
                status, detail = "degraded", detail.detail
            elif check.degraded_if is not None and check.degraded_if():
                status = "degraded"
            else:
                status = "ok"
        except TimeoutError:
            status, detail = "fail", f"no answer within {self.timeout_seconds:g} s"
        except Exception as exc:
            status, detail = "fail", f"{type(exc).__name__}: {exc}"
        latency_ms = round((time.perf_counter() - start) * 1000, 2)
        if status != "ok":
            log.warning("health_check_not_ok", check=check.name, status=status)
        return CheckResult(check.name, status, check.critical, latency_ms, detail)

    async def run(self, *, critical_only: bool = False) -> list[CheckResult]:
        """Every check's result (or only the critical ones), in registration order."""
        checks = [c for c in self._checks if c.critical or not critical_only]
        return list(await asyncio.gather(*(self._run(c) for c in checks)))
