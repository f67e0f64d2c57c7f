"""Idempotency keys for POST: replay the first answer instead of doing the work twice.

Follows the IETF httpapi idempotency-key draft: the first completed answer for a key (per client
key) is kept for the TTL and replayed to identical repeats; the same key with another body is a
client error (422); the same key while the first request still runs is a conflict (409). A 5xx
or an interrupted request stores nothing, so the client may simply retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.core.exceptions import AppError, IdempotencyKeyInFlight, IdempotencyKeyReused

REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A successful answer as it will be sent, and sent again on replay."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    created: float
    outcome: Outcome | None = None
    error: AppError | None = None

    @property
    def in_flight(self) -> bool:
        return self.outcome is None and self.error is None


def _replay_of(error: AppError) -> AppError:
    # A fresh exception each time (raising one instance twice would chain its tracebacks).
    replay = AppError(error.detail, headers={**error.headers, REPLAYED_HEADER: "true"})
    replay.status = error.status
    replay.type = error.type
    return replay


class IdempotencyStore:
    """Keeps the outcome of keyed requests for `ttl_seconds`, at most `max_keys` of them.

    Only the event loop touches the store and no await separates a lookup from the insert that
    follows it, so two concurrent requests with one key cannot both start the work.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_keys = max_keys
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        # Fingerprints cover the body, password included: keyed so they prove nothing outside.
        self._secret = secrets.token_bytes(32)

    def __len__(self) -> int:
        return len(self._entries)

    def fingerprint(self, payload: Mapping[str, Any]) -> str:
        """A keyed digest of the request body, independent of key order and whitespace."""
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hmac.new(self._secret, canonical.encode(), hashlib.sha256).hexdigest()

    def _evict(self, now: float) -> None:
        while self._entries:
            entry = next(iter(self._entries.values()))
            if now - entry.created < self._ttl and len(self._entries) < self._max_keys:
                break
            # Oldest first; past max_keys the oldest key is forgotten early (memory is bounded).
            self._entries.popitem(last=False)

    async def run(
        self,
        client_key: str,
        key: str,
        fingerprint: str,
        operation: Callable[[], Awaitable[Outcome]],
    ) -> tuple[Outcome, bool]:
        """Run `operation` once per key, or replay its outcome; returns (outcome, replayed)."""
        now = self._clock()
        self._evict(now)
        store_key = (client_key, key)
        entry = self._entries.get(store_key)
        if entry is not None:
            if not hmac.compare_digest(entry.fingerprint, fingerprint):
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was already used with a different request body."
                )
            if entry.in_flight:
                raise IdempotencyKeyInFlight(
                    "A request with this Idempotency-Key is still being processed.",
                    headers={"Retry-After": "1"},
                )
            if entry.error is not None:
                raise _replay_of(entry.error)
            assert entry.outcome is not None
            replayed = entry.outcome
            return Outcome(
                replayed.status, replayed.body, {**replayed.headers, REPLAYED_HEADER: "true"}
            ), True

        entry = _Entry(fingerprint=fingerprint, created=now)
        self._entries[store_key] = entry
        try:
            outcome = await operation()
        except AppError as exc:
            if exc.status < 500:
                entry.error = exc
            else:
                self._forget(store_key, entry)
            raise
        except BaseException:
            self._forget(store_key, entry)
            raise
        entry.outcome = outcome
        return outcome, False

    def _forget(self, store_key: tuple[str, str], entry: _Entry) -> None:
        if self._entries.get(store_key) is entry:
            del self._entries[store_key]
