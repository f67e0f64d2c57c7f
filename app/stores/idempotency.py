"""The idempotency-key store's interface: what a key holds (`Entry`) and where keys live
(`KeyBackend`): `MemoryKeys` (app/services/idempotency.py) or `RedisKeys` (app/redis/).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class Outcome:
    """A successful answer as it will be sent, and sent again on replay."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredError:
    """A client error (4xx) kept to be answered again on repeats."""

    status: int
    type: str
    detail: str
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Entry:
    """What a key holds: the claim (`token`), then the outcome or the client error."""

    fingerprint: str
    token: str
    outcome: Outcome | None = None
    error: StoredError | None = None

    @property
    def in_flight(self) -> bool:
        """The first request with this key has not finished."""
        return self.outcome is None and self.error is None

    def to_json(self) -> bytes:
        """The entry as JSON (the Redis backend stores this)."""
        return orjson.dumps(
            {
                "fingerprint": self.fingerprint,
                "token": self.token,
                "outcome": asdict(self.outcome) if self.outcome else None,
                "error": asdict(self.error) if self.error else None,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Entry:
        """The entry `to_json` wrote."""
        data = orjson.loads(raw)
        outcome = Outcome(**data["outcome"]) if data["outcome"] else None
        error = StoredError(**data["error"]) if data["error"] else None
        return cls(data["fingerprint"], data["token"], outcome, error)


class KeyBackend(Protocol):
    """Where idempotency keys live; `claim` must be atomic across everything sharing it."""

    async def claim(self, key: str, entry: Entry, in_flight_seconds: float) -> Entry | None:
        """The entry already under `key`, or None after storing `entry` (in flight) there."""
        ...

    async def finish(self, key: str, entry: Entry) -> None:
        """Replace the claim with the final entry (same token), kept for the TTL."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Remove the claim if it still holds `token`."""
        ...
