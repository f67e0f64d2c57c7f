"""Long-lived connections per client: SSE streams and WebSockets each cost memory for as long
as they stay open, so one client may hold only a bounded number of them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class Lease:
    """One admitted connection; `release` it when the connection ends (idempotent)."""

    quota: ConnectionQuota
    key: str
    released: bool = field(default=False)

    def release(self) -> None:
        """Give the place back (safe to call more than once)."""
        if not self.released:
            self.released = True
            self.quota._release(self.key)


class ConnectionQuota:
    """At most `per_client` open connections for each client key."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._open: dict[str, int] = {}

    def lease(self, key: str) -> Lease | None:
        """A lease for one more connection of `key`, or None when it already holds its quota."""
        count = self._open.get(key, 0)
        if count >= self.per_client:
            return None
        self._open[key] = count + 1
        return Lease(self, key)

    def _release(self, key: str) -> None:
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)
