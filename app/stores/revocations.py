"""The logged-out-token store's interface (`Revocations`): `MemoryRevocations`
(app/memory/revocations.py) or `RedisRevocations` (app/redis/revocations.py).
"""

from __future__ import annotations

from typing import Protocol


class Revocations(Protocol):
    """Where logged-out token ids are kept: this process, or Redis for every replica."""

    async def revoke(self, token_id: str, expires_at: int) -> bool:
        """Remember `token_id` until `expires_at` (a Unix time); False if there is no room."""
        ...

    async def is_revoked(self, token_id: str) -> bool:
        """Whether `token_id` was logged out."""
        ...
