"""Login throttling: attempts per client and account, and a back-off for failing clients.

The chain's rate limiter counts every request a client sends; guessing passwords needs a
tighter rule that a client cannot escape by changing what it sends:
- attempts are counted per (client address, account): one address guessing at one account gets
  `attempts_per_minute`, however many tokens or accounts of its own it holds;
- after `failures_before_backoff` consecutive failures from one address at one account, that
  address must wait 1 s, then 2, 4, ... up to 5 minutes before trying the account again;
- after as many failures at one account from any addresses (a botnet), every address that has
  itself failed there backs off with the account, so many addresses slow down together;
- an address that has not failed at the account is never refused by a back-off, so a guesser
  cannot lock the owner out of their own account (OWASP's authentication cheat sheet warns
  that lockouts hand attackers a denial of service; it recommends back-off that slows guesses
  instead). A correct password ends the back-off for everyone.

What it remembers is bounded: an account name is at most `MAX_ACCOUNT_LENGTH` characters
(longer is refused before it is looked at), failures are forgotten `FORGET_AFTER_SECONDS` after
the last one, and at most `max_entries` accounts and (address, account) pairs are kept.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.core.exceptions import TooManyRequests, Unauthorized
from app.core.rate_limiter import RateLimiter

MAX_BACKOFF_SECONDS = 300.0
FORGET_AFTER_SECONDS = 900.0
# RFC 5321's longest path is 256 octets; an address longer than 254 cannot be delivered to.
MAX_ACCOUNT_LENGTH = 254


@dataclass(slots=True)
class _Failures:
    count: int
    blocked_until: float
    last: float


class _FailureBook:
    """Consecutive failures per key, in the order of their last failure: forgotten when old,
    the oldest first when the book is full."""

    def __init__(self, threshold: int, max_entries: int, clock: Callable[[], float]) -> None:
        self._threshold = threshold
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        self._forget_old()
        return len(self._entries)

    def get(self, key: str) -> _Failures | None:
        self._forget_old()
        return self._entries.get(key)

    def wait(self, key: str) -> float:
        failures = self.get(key)
        return 0.0 if failures is None else failures.blocked_until - self._clock()

    def fail(self, key: str) -> None:
        now = self._clock()
        failures = self._entries.pop(key, None) or _Failures(0, 0.0, now)
        failures.count += 1
        failures.last = now
        if failures.count >= self._threshold:
            delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (failures.count - self._threshold))
            failures.blocked_until = now + delay
        self._entries[key] = failures
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        self._forget_old()

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)

    def _forget_old(self) -> None:
        horizon = self._clock() - FORGET_AFTER_SECONDS
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.last > horizon:
                return
            self._entries.popitem(last=False)


class LoginThrottle:
    """Decides whether a password may be checked now; see the module docstring."""

    def __init__(
        self,
        *,
        attempts_per_minute: int,
        failures_before_backoff: int,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._attempts = RateLimiter(attempts_per_minute, 60, clock=clock)
        self._pairs = _FailureBook(failures_before_backoff, max_entries, clock)
        self._accounts = _FailureBook(failures_before_backoff, max_entries, clock)

    def entries(self) -> int:
        """Failure records held now (accounts and address-account pairs)."""
        return len(self._pairs) + len(self._accounts)

    def check(self, address: str, account: str) -> None:
        """Raise `TooManyRequests` if this attempt must not be checked now (`Unauthorized` for an
        account name too long to be one)."""
        if len(account) > MAX_ACCOUNT_LENGTH:
            raise Unauthorized("Incorrect email or password.")
        pair = f"{address}|{account}"
        wait = self._pairs.wait(pair)
        if self._pairs.get(pair) is not None:
            # Only a client that has failed here shares the account's back-off.
            wait = max(wait, self._accounts.wait(account))
        if wait > 0:
            raise TooManyRequests(
                "Too many failed logins for this account; wait before trying again.",
                retry_after=math.ceil(wait),
            )
        decision = self._attempts.hit(pair)
        if not decision.allowed:
            raise TooManyRequests(
                "Too many login attempts from this address for this account.",
                retry_after=decision.retry_after,
            )

    def failed(self, address: str, account: str) -> None:
        """Record a failed attempt at `account` from `address`."""
        self._pairs.fail(f"{address}|{account}")
        self._accounts.fail(account)

    def succeeded(self, address: str, account: str) -> None:
        """A correct password ends the account's back-off, and this address's."""
        self._pairs.clear(f"{address}|{account}")
        self._accounts.clear(account)
