"""Logged-out tokens in this process (`MemoryRevocations`); `RedisRevocations`
(app/redis/revocations.py) is its twin for every replica."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class MemoryRevocations:
    """Ids of logged-out tokens, kept until the tokens would have expired anyway.

    Bounded: `revoke` answers False when it has no room, and the caller then revokes every
    token of the user instead (a new credential stamp): never a revoked token that works.
    """

    def __init__(
        self, *, max_tokens: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        self._max_tokens = max_tokens
        self._clock = clock
        self._expiry: OrderedDict[str, int] = OrderedDict()  # in order of expiry, roughly

    def _purge(self) -> None:
        now = self._clock()
        for token_id, expires_at in list(self._expiry.items()):
            if expires_at < now:
                del self._expiry[token_id]

    async def revoke(self, token_id: str, expires_at: int) -> bool:
        """Remember `token_id` until `expires_at`; False if there is no room."""
        if len(self._expiry) >= self._max_tokens:
            self._purge()
            if len(self._expiry) >= self._max_tokens:
                return False
        self._expiry[token_id] = expires_at
        return True

    async def is_revoked(self, token_id: str) -> bool:
        """Whether `token_id` was logged out."""
        return token_id in self._expiry
