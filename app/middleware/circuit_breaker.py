"""The circuit-breaker layer: each route group behind its own breaker, 503 while it fails."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.breaker import OUTCOME_SCOPE_KEY, BreakerRegistry, CallOutcome
from app.core.dependency import Dependency
from app.core.exceptions import CircuitOpenError, ProblemType
from app.http.problems import problem_response
from app.http.spans import note

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CircuitBreakerMiddleware:
    """Puts each route group (a path prefix, one per router) behind its own breaker.

    A breaker guards a dependency, so only a call in which a dependency failed counts as a
    failure: the error handlers report one (`report_dependency_failure`) for the errors marked
    `dependency_failure` (a crashed or overrunning worker, the flaky demo's simulated
    dependency). Everything a client can cause with its own input — a 4xx, a 500 from a bug
    its input triggered, a request that runs into the timeout, load shed with 503 — never
    opens a breaker for everyone else. Paths in no group (probes, `/metrics`, `/resilience`)
    pass straight through.

    Redis is a dependency with a breaker of its own (`app/core/dependency.py`), which sees
    every call to it and so learns of an outage once for the whole process; a group breaker
    does not count store failures a second time. Here it only refuses a group's writes at the
    door (`writes_need`) while that breaker is open.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: BreakerRegistry,
        groups: Sequence[tuple[str, str]],
        writes_need: Mapping[str, Sequence[Dependency]] | None = None,
    ) -> None:
        self.app = app
        self.registry = registry
        # Group -> the dependencies its writes need: refused at the door while one of them is
        # known to be down (its own breaker open). Reads pass: they may have a fallback.
        self.writes_need = dict(writes_need or {})
        # Longest prefix first, so /api/v1/demo/flaky wins over /api/v1/demo.
        self.groups = sorted(groups, key=lambda group: len(group[0]), reverse=True)
        for _, name in self.groups:
            registry.get(name)
        # One anchored alternation of literal prefixes, tried in that order, each to be
        # followed by "/" or the end: the first prefix the path is under, in one C call
        # instead of a Python loop over every group on every request.
        self._names = dict(self.groups)
        alternatives = "|".join(re.escape(prefix) for prefix, _ in self.groups) or "(?!)"
        self._prefix = re.compile(rf"({alternatives})(?:/|\Z)")

    def _group(self, path: str) -> str | None:
        found = self._prefix.match(path)
        return self._names[found.group(1)] if found is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self._group(scope["path"]) if scope["type"] == "http" else None
        if name is None:
            await self.app(scope, receive, send)
            return
        breaker = self.registry.get(name)
        try:
            permit = breaker.acquire()
        except CircuitOpenError as exc:
            note("breaker_refused", breaker=name, retry_after=exc.retry_after)
            response = problem_response(
                scope,
                503,
                f"The {name} routes are failing; the circuit breaker is refusing calls. "
                f"Retry in {exc.retry_after} s.",
                type_=ProblemType.CIRCUIT_OPEN,
                headers={"Retry-After": str(exc.retry_after)},
            )
            await response(scope, receive, send)
            return

        if scope["method"] not in _SAFE_METHODS and (needs := self.writes_need.get(name)):
            for dependency in needs:
                if dependency.breaker.refusing:
                    retry = dependency.retry_after(dependency.breaker.retry_after())
                    note("breaker_refused", breaker=dependency.name, retry_after=retry)
                    response = problem_response(
                        scope,
                        503,
                        f"The {dependency.name} dependency is failing, so the {name} routes "
                        f"refuse writes until it answers again. Retry in {retry} s.",
                        type_=ProblemType.CIRCUIT_OPEN,
                        headers={"Retry-After": str(retry)},
                    )
                    breaker.record(permit, failure=None)
                    await response(scope, receive, send)
                    return

        outcome = CallOutcome()
        scope[OUTCOME_SCOPE_KEY] = outcome
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            # A timeout or a client gone away: neither says the dependency failed.
            breaker.record(permit, failure=None)
            raise
        except Exception:
            # A bug, not a dependency known to fail; anyone could trigger it with their input.
            breaker.record(permit, failure=None)
            raise
        # Only a failure the code below reported as a dependency's counts; a client's bad input,
        # a bug, a timeout or load shed on purpose succeed or count as nothing.
        breaker.record(permit, failure=outcome.dependency_failed)
