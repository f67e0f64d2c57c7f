"""Idempotency keys for POST: replay the first answer instead of doing the work twice.

Follows the IETF httpapi idempotency-key draft: the first completed answer for a key (per client
key) is kept for the TTL and replayed to identical repeats; the same key with another body is a
client error (422); the same key while the first request still runs is a conflict (409). A 5xx
or an interrupted request stores nothing, so the client may simply retry.

The rules are here (`IdempotencyStore`); where keys live is a `KeyBackend` (app/stores/):
`MemoryKeys` (app/memory/idempotency.py) in this process, or `RedisKeys`
(app/redis/idempotency.py) shared by every replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from app.core.exceptions import (
    AppError,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    ProblemType,
    ReplayedError,
    StoreUnavailable,
)
from app.core.logging import get_logger
from app.stores.idempotency import Entry, KeyBackend, Outcome, StoredError

log = get_logger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"


def _stored_error(error: AppError) -> StoredError:
    return StoredError(error.status, str(error.type), error.detail, dict(error.headers))


def _replay_of(error: StoredError) -> ReplayedError:
    # A fresh exception each time (raising one instance twice would chain its tracebacks).
    return ReplayedError(
        error.status,
        ProblemType(error.type),
        error.detail,
        {**error.headers, REPLAYED_HEADER: "true"},
    )


class IdempotencyStore:
    """Runs keyed requests once and replays their outcome, over a `KeyBackend` (this process's
    memory, or Redis shared by every replica).

    The backend claims a key atomically, so two concurrent requests with one key cannot both
    start the work, whichever replicas they reach.
    """

    def __init__(self, backend: KeyBackend, *, secret: bytes, in_flight_seconds: float) -> None:
        self.backend = backend
        # Fingerprints cover the body, password included: keyed so they prove nothing outside.
        # The key comes from settings so every replica computes the same fingerprint.
        self._secret = secret
        self._in_flight_seconds = in_flight_seconds

    def fingerprint(self, payload: Mapping[str, Any]) -> str:
        """A keyed digest of the request body, independent of key order and whitespace."""
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hmac.new(self._secret, canonical.encode(), hashlib.sha256).hexdigest()

    def request_stamp(self, client_key: str, key: str, fingerprint: str) -> str:
        """A keyed digest naming one request (client, key and body): stored with what the
        request writes, so a retry can find a write whose answer never arrived."""
        message = f"{client_key}\x00{key}\x00{fingerprint}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    async def run(
        self,
        client_key: str,
        key: str,
        fingerprint: str,
        operation: Callable[[], Awaitable[Outcome]],
    ) -> tuple[Outcome, bool]:
        """Run `operation` once per key, or replay its outcome; returns (outcome, replayed)."""
        store_key = f"{client_key}\x00{key}"
        mine = Entry(fingerprint=fingerprint, token=secrets.token_hex(8))
        existing = await self.backend.claim(store_key, mine, self._in_flight_seconds)
        if existing is not None:
            return _answer_repeat(existing, fingerprint), True
        try:
            outcome = await operation()
        except AppError as exc:
            if exc.status < 500:
                await self._settle(
                    self.backend.finish(store_key, replace(mine, error=_stored_error(exc)))
                )
            else:
                await self._settle(self.backend.release(store_key, mine.token))
            raise
        except BaseException:
            # Interrupted (cancelled, crashed): the key is free again so the client may retry.
            # Shielded: a cancelled request must still give its claim back.
            await asyncio.shield(self._settle(self.backend.release(store_key, mine.token)))
            raise
        await self._settle(self.backend.finish(store_key, replace(mine, outcome=outcome)))
        return outcome, False

    async def _settle(self, step: Awaitable[None]) -> None:
        # The work is done (or failed) either way: a store that cannot record it must not turn
        # a created account into an error. The claim then expires after `in_flight_seconds`.
        try:
            await step
        except StoreUnavailable:
            log.warning("idempotency_key_not_settled")


def _answer_repeat(entry: Entry, fingerprint: str) -> Outcome:
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
    return Outcome(replayed.status, replayed.body, {**replayed.headers, REPLAYED_HEADER: "true"})
