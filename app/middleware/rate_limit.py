"""Rate limiting per client key, with the IETF RateLimit-Policy / RateLimit fields."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.exceptions import ProblemType
from app.core.logging import get_logger
from app.http.asgi import append_headers
from app.http.paths import NO_PATHS, Paths
from app.http.problems import problem_response
from app.http.spans import note
from app.stores.quotas import QuotaLimiter, RateLimitDecision

log = get_logger(__name__)

RATE_LIMITED = Counter(
    "http_rate_limited_requests_total",
    "Requests refused with 429 by the rate limiter.",
)
POLICY_NAME = "default"


def _policy(name: str, limiter: QuotaLimiter) -> str:
    # draft-ietf-httpapi-ratelimit-headers-11: Structured Fields, quota (q) per window (w) in
    # the policy; remaining (r) and seconds until the quota resets (t) in RateLimit.
    return f'"{name}";q={limiter.quota};w={int(limiter.window)}'


def _fields(name: str, policy: str, decision: RateLimitDecision) -> tuple[tuple[str, str], ...]:
    return (
        ("RateLimit-Policy", policy),
        ("RateLimit", f'"{name}";r={decision.remaining};t={decision.reset_seconds}'),
    )


class RateLimitMiddleware:
    """Refuses requests past a client's quota with a 429 problem and `Retry-After`.

    Every counted request's answer carries the rate-limit fields; the `exempt` paths (probes,
    metrics, docs, static files) are neither counted nor given the fields. With `only` the
    layer counts those paths alone
    (a policy of its own, `policy_name`, for cheap reads that need a looser bound); without
    `advertise`, only a refusal carries the fields. The client key comes from
    `client_key` (the token subject when a valid bearer token is sent, else the client address
    seen through trusted proxies).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: QuotaLimiter,
        client_key: Callable[[Scope], str],
        exempt: Paths = NO_PATHS,
        only: Paths | None = None,
        policy_name: str = POLICY_NAME,
        advertise: bool = True,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.client_key = client_key
        self.exempt = exempt
        self.only = only
        self.name = policy_name
        self.advertise = advertise
        self.policy = _policy(policy_name, limiter)

    def _counts(self, path: str) -> bool:
        if self.only is not None:
            return path in self.only
        return path not in self.exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._counts(scope["path"]):
            await self.app(scope, receive, send)
            return
        decision = await self.limiter.acquire(self.client_key(scope))
        fields = _fields(self.name, self.policy, decision)
        if not decision.allowed:
            RATE_LIMITED.inc()
            note("rate_limited", policy=self.name, retry_after=decision.retry_after)
            log.info("rate_limited", retry_after=decision.retry_after)
            response = problem_response(
                scope,
                429,
                f"Rate limit of {self.limiter.quota} requests per {int(self.limiter.window)} s "
                f"exceeded; retry in {decision.retry_after} s.",
                type_=ProblemType.RATE_LIMITED,
                headers={**dict(fields), "Retry-After": str(decision.retry_after)},
            )
            await response(scope, receive, send)
            return
        if not self.advertise:
            await self.app(scope, receive, send)
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                append_headers(message, fields)
            await send(message)

        await self.app(scope, receive, send_with_fields)
