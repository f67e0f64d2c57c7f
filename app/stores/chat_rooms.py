"""The chat-room store's interface (`SharedRooms`): who holds which name in a room (a lease),
and frames relayed to every replica. `RedisRooms` (app/redis/chat.py); with the memory store
the chat service keeps its rooms itself (app/services/chat.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class SharedRooms(Protocol):
    """Rooms that span replicas: who holds which name, and frames to every replica."""

    def attach(
        self,
        deliver: Callable[[str, dict[str, Any], str | None, str | None], object],
        on_lost: Callable[[], object],
    ) -> None: ...

    def start(self) -> None: ...

    async def claim(self, room: str, name: str) -> list[str]: ...

    def on_lease_lost(self, callback: Callable[[str, str], object]) -> None: ...

    async def release(self, room: str, name: str) -> None: ...

    async def present(self, room: str, name: str) -> bool: ...

    async def relay(
        self, room: str, payload: dict[str, Any], *, exclude: str | None, to: str | None
    ) -> None: ...

    def forget_all(self) -> None: ...

    async def close(self) -> None: ...
