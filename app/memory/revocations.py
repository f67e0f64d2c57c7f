"""Logged-out tokens in this process (`MemoryRevocations`); `RedisRevocations`
(app/redis/revocations.py) is its twin for every replica."""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable

from app.core.exceptions import DuplicateKey, RecordNotFound
from app.stores.records import CollectionSpec, Repository, UniqueField

# Kept as records next to the users when the repository is durable (a snapshot and its
# journal): a restart that keeps an account must keep its logged-out tokens out as well.
REVOKED_TOKENS = CollectionSpec("revoked_tokens", unique=(UniqueField("token_id"),))


class MemoryRevocations:
    """Ids of logged-out tokens, kept until the tokens would have expired anyway.

    Bounded: `revoke` answers False when it has no room, and the caller then revokes every
    token of the user instead (a new credential stamp): never a revoked token that works.
    With `records` (the memory repository, which `APP_SNAPSHOT_PATH` makes durable) each id is
    also written there, and `restore` reads them back at start-up.
    """

    def __init__(
        self,
        *,
        max_tokens: int = 100_000,
        clock: Callable[[], float] = time.time,
        records: Repository | None = None,
    ) -> None:
        self._max_tokens = max_tokens
        self._clock = clock
        self._expiry: OrderedDict[str, int] = OrderedDict()  # in order of expiry, roughly
        self._records = records
        self._record_ids: dict[str, int] = {}
        if records is not None:
            records.declare(REVOKED_TOKENS)

    async def restore(self) -> int:
        """Read back the ids the repository kept (after it loaded its snapshot); those whose
        tokens have expired are dropped. Returns how many are in force."""
        if self._records is None:
            return 0
        page = await self._records.list(REVOKED_TOKENS.name)
        now = self._clock()
        for record in page.items:
            token_id, expires_at = record["token_id"], int(record["expires_at"])
            self._record_ids[token_id] = record["id"]
            self._expiry[token_id] = expires_at
        await self._forget([t for t, expires_at in self._expiry.items() if expires_at < now])
        return len(self._expiry)

    async def _purge(self) -> None:
        now = self._clock()
        await self._forget([t for t, expires_at in self._expiry.items() if expires_at < now])

    async def _forget(self, token_ids: list[str]) -> None:
        for token_id in token_ids:
            self._expiry.pop(token_id, None)
            record_id = self._record_ids.pop(token_id, None)
            if self._records is not None and record_id is not None:
                # Already gone if a concurrent purge forgot it first.
                with contextlib.suppress(RecordNotFound):
                    await self._records.delete(REVOKED_TOKENS.name, record_id)

    async def revoke(self, token_id: str, expires_at: int) -> bool:
        """Remember `token_id` until `expires_at`; False if there is no room."""
        if token_id in self._expiry:
            return True
        if len(self._expiry) >= self._max_tokens:
            await self._purge()
            if len(self._expiry) >= self._max_tokens:
                return False
        if self._records is not None:
            # Written before it is acknowledged: the logout's answer promises it holds.
            try:
                record = await self._records.create(
                    REVOKED_TOKENS.name, {"token_id": token_id, "expires_at": expires_at}
                )
            except DuplicateKey:
                return True  # the same token logged out twice at once: one record is enough
            self._record_ids[token_id] = record["id"]
        self._expiry[token_id] = expires_at
        return True

    async def is_revoked(self, token_id: str) -> bool:
        """Whether `token_id` was logged out."""
        return token_id in self._expiry
