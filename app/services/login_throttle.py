"""Login throttling: attempts per client and account, and a back-off for an attacked account.

The chain's rate limiter counts every request a client sends; guessing passwords needs a
tighter rule that a client cannot escape by changing what it sends:
- attempts are counted per (client address, account): one address guessing at one account gets
  `attempts_per_minute`, however many tokens or accounts of its own it holds;
- after `failures_before_backoff` consecutive failures at one account, whoever tries it next
  must wait 1 s, then 2, 4, ... up to 5 minutes, until a login there succeeds. Failures from
  many addresses (a botnet) slow down together. The back-off is short on purpose: a lockout
  would let anyone lock a victim out of their own account.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.core.exceptions import TooManyRequests
from app.core.rate_limiter import RateLimiter

MAX_BACKOFF_SECONDS = 300.0


@dataclass(slots=True)
class _Failures:
    count: int
    blocked_until: float


class LoginThrottle:
    """Decides whether a login attempt may be checked now; see the module docstring."""

    def __init__(
        self,
        *,
        attempts_per_minute: int,
        failures_before_backoff: int,
        max_accounts: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._attempts = RateLimiter(attempts_per_minute, 60, clock=clock)
        self._threshold = failures_before_backoff
        self._max_accounts = max_accounts
        self._clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def check(self, address: str, account: str) -> None:
        """Raise `TooManyRequests` if this attempt must not be checked now."""
        failures = self._failures.get(account)
        if failures is not None:
            wait = failures.blocked_until - self._clock()
            if wait > 0:
                raise TooManyRequests(
                    "Too many failed logins for this account; wait before trying again.",
                    retry_after=math.ceil(wait),
                )
        decision = self._attempts.hit(f"{address}|{account}")
        if not decision.allowed:
            raise TooManyRequests(
                "Too many login attempts from this address for this account.",
                retry_after=decision.retry_after,
            )

    def failed(self, account: str) -> None:
        """Record a failed attempt at `account`."""
        failures = self._failures.pop(account, None) or _Failures(0, 0.0)
        failures.count += 1
        if failures.count >= self._threshold:
            delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (failures.count - self._threshold))
            failures.blocked_until = self._clock() + delay
        self._failures[account] = failures
        while len(self._failures) > self._max_accounts:
            self._failures.popitem(last=False)

    def succeeded(self, account: str) -> None:
        """A correct password ends the account's back-off."""
        self._failures.pop(account, None)
