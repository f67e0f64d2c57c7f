"""How an answer served from a stale copy says so: `Age` (RFC 9111) and `Cache-Status`
(RFC 9211) with a negative `ttl` (how long ago it went stale) and the reason, so a client or
a proxy can tell a fallback from a fresh read. Counted in `dependency_fallbacks_total`."""

from __future__ import annotations

from prometheus_client import Counter

CACHE_NAME = "resilient-api"

FALLBACKS = Counter(
    "dependency_fallbacks_total",
    "Answers served by a fallback because a dependency failed, by dependency and kind.",
    ["dependency", "fallback"],
)


def stale_marks(age_seconds: float, ttl_seconds: float, dependency: str) -> dict[str, str]:
    """The headers of an answer served stale-if-error from a copy `age_seconds` old, which
    was fresh for `ttl_seconds`, because `dependency` failed; counts the fallback."""
    FALLBACKS.labels(dependency=dependency, fallback="stale_if_error").inc()
    age = int(age_seconds)
    ttl = min(0, int(ttl_seconds) - age)  # a copy kept past an outage's start is stale too
    return {
        "Age": str(age),
        "Cache-Status": f'{CACHE_NAME}; hit; ttl={ttl}; detail="stale-if-error"',
    }
