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
the last one, and in memory at most `max_entries` accounts and (address, account) pairs are kept.
With Redis the counts and back-offs are shared by every replica (`app/redis/login_throttle.py`),
so a guesser gains nothing by reaching another replica.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sized

from app.core.exceptions import TooManyRequests, Unauthorized
from app.stores.login_failures import FailureBook
from app.stores.quotas import QuotaLimiter

# RFC 5321's longest path is 256 octets; an address longer than 254 cannot be delivered to.
MAX_ACCOUNT_LENGTH = 254


class LoginThrottle:
    """Decides whether a password may be checked now; see the module docstring."""

    def __init__(
        self,
        *,
        attempts: QuotaLimiter,
        pairs: FailureBook,
        accounts: FailureBook,
    ) -> None:
        self._attempts = attempts
        self._pairs = pairs
        self._accounts = accounts

    def entries(self) -> int:
        """Failure records held now in this process (accounts and address-account pairs)."""
        return sum(len(book) for book in (self._pairs, self._accounts) if isinstance(book, Sized))

    async def check(self, address: str, account: str) -> None:
        """Raise `TooManyRequests` if this attempt must not be checked now (`Unauthorized` for an
        account name too long to be one)."""
        if len(account) > MAX_ACCOUNT_LENGTH:
            raise Unauthorized("Incorrect email or password.")
        pair = _pair(address, account)
        failed_here, wait = await self._pairs.state(pair)
        if failed_here:
            # Only a client that has failed here shares the account's back-off.
            wait = max(wait, (await self._accounts.state(account))[1])
        if wait > 0:
            raise TooManyRequests(
                "Too many failed logins for this account; wait before trying again.",
                retry_after=math.ceil(wait),
            )
        decision = await self._attempts.acquire(pair)
        if not decision.allowed:
            raise TooManyRequests(
                "Too many login attempts from this address for this account.",
                retry_after=decision.retry_after,
            )

    async def failed(self, address: str, account: str) -> None:
        """Record a failed attempt at `account` from `address`."""
        await self._pairs.fail(_pair(address, account))
        await self._accounts.fail(account)

    async def succeeded(self, address: str, account: str) -> None:
        """A correct password ends the account's back-off, and this address's."""
        await self._pairs.clear(_pair(address, account))
        await self._accounts.clear(account)


def _pair(address: str, account: str) -> str:
    # Hashed: what a store keeps has one small size and names no email address.
    return hashlib.sha256(f"{address}|{account}".encode()).hexdigest()[:32]
