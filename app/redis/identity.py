"""Which dataset this process works on: noticing that Redis lost its data, and never handing out
an id twice because of it.

A Redis without persistence that restarts (or a `FLUSHALL`, or a failover to an empty replica)
comes back empty: its id counters start again from 0, and without a guard the next user would
get id 1, the id of an account some client still holds, whose old ETags would then answer 304
for a different person. So:

- The dataset has an **epoch**, a random token in `<prefix>epoch`, set by the first process
  that finds none. Each process remembers the one it joined.
- Every id is taken by a script that checks the epoch and increments the counter in one step:
  an id cannot come from a dataset this process did not join.
- When the epoch is missing or another one (found by that script, or by a check every
  `CHECK_SECONDS`), or a counter hands out an id this process has already seen (the dataset
  went back in time: a failover to a replica that was behind, a restore from an older
  backup), this process **resumes**: it adopts the stored epoch or sets a new one, and
  moves every id counter `ID_GAP` past the highest id it has seen. Past what it has seen, since
  no id it handed out or read may be given again; a gap past that, since other replicas may
  have handed out ids it never heard of (each of them resumes too, when it notices, and the
  highest counter wins). Then it logs `store_data_lost`, counts `store_data_loss_total`,
  reports the loss in `/ready?verbose` (a degraded `store_identity` check) and calls
  `on_data_lost` (the app creates the admin account again, as at first start).

What a loss cannot give back: the lost records themselves, idempotency keys, logged-out tokens
(a token revoked before the loss works again until it expires; its account, if lost, is gone)
and scoring jobs. docs/scaling.md says to run Redis with AOF for this reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter

from app.core.clock import utc_now_iso
from app.core.exceptions import StoreUnavailable
from app.core.logging import get_logger
from app.redis.client import RedisClient

log = get_logger(__name__)

CHECK_SECONDS = 2.0
# How far past the highest id this process has seen the counters resume after a loss.
ID_GAP = 1_000_000
# How long `/ready?verbose` keeps reporting a loss as degraded.
REPORT_SECONDS = 600.0

STORE_DATA_LOSS = Counter(
    "store_data_loss_total",
    "Times this process found the shared store had lost its data (another or no epoch).",
)

# KEYS[1] the epoch, KEYS[2] an id counter; ARGV[1] the epoch this process joined, ARGV[2]
# the highest id this process has seen from that counter. -1: another epoch; -2: the counter
# is behind an id already seen (every id this process saw was issued before this script ran,
# so an intact counter is past it: the comparison must be made here, in the script, because
# answers reach the process in any order).
_NEXT_ID = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local id = redis.call('INCR', KEYS[2])
if id <= tonumber(ARGV[2]) then return -2 end
return id
"""
_BEHIND = -2  # (-1: another epoch)
# KEYS[1] the epoch; ARGV[1] a fresh epoch (kept only if there is none). Returns the epoch.
_JOIN = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""
# KEYS[1] the epoch, KEYS[2..] id counters; ARGV[1] a fresh epoch, ARGV[2..] the highest id
# this process knows for each counter: no counter stays below it.
_RESUME = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
for i = 2, #KEYS do
  local seq = tonumber(redis.call('GET', KEYS[i]) or '0')
  if seq < tonumber(ARGV[i]) then redis.call('SET', KEYS[i], ARGV[i]) end
end
return redis.call('GET', KEYS[1])
"""


class StoreIdentity:
    """The epoch this process joined, the highest id it knows per counter, and the resume."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self.key = f"{client.prefix}epoch"
        self.epoch: str | None = None
        self._highest: dict[str, int] = {}  # counter key -> highest id seen
        self._next_id = client.script(_NEXT_ID)
        self._join = client.script(_JOIN)
        self._resume = client.script(_RESUME)
        self._resuming = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self.losses: list[dict[str, Any]] = []
        self._last_loss: float | None = None
        self.on_data_lost: Callable[[], Awaitable[object]] | None = None

    async def join(self) -> None:
        """Join the stored epoch (or start one) and begin checking it (start-up)."""
        await self._join_epoch()
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="epoch")

    async def _join_epoch(self) -> None:
        reply = await self._client.call(
            "identity.join", lambda r: self._join([self.key], [secrets.token_hex(8)])
        )
        self.epoch = _text(reply)

    def saw(self, counter: str, record_id: int) -> None:
        """Remember an id read or given out under `counter` (resumes start past it)."""
        if record_id > self._highest.get(counter, 0):
            self._highest[counter] = record_id

    async def next_id(self, counter: str) -> int:
        """A fresh id from `counter`, from the dataset this process joined."""
        if self.epoch is None:  # a repository used without the app's start-up (tools, tests)
            await self._join_epoch()
        record_id = await self._take(counter)
        if record_id <= 0:  # resume past every id seen, then take one
            await self.resume(went_back=counter if record_id == _BEHIND else None)
            record_id = await self._take(counter)
            if record_id <= 0:
                raise StoreUnavailable("The store's dataset changed while an id was taken; retry.")
        self.saw(counter, record_id)
        return record_id

    async def _take(self, counter: str) -> int:
        args = [self.epoch or "", self._highest.get(counter, 0)]
        reply = await self._client.call(
            "repository.next_id", lambda r: self._next_id([self.key, counter], args)
        )
        return int(reply)

    async def resume(self, went_back: str | None = None) -> None:
        """Adopt the stored epoch or set a new one, with every counter past what was seen.
        `went_back`: the counter found behind an id already seen (the epoch may be the same)."""
        async with self._resuming:
            stored = await self._client.call(
                "identity.check", lambda r: r.get(self.key), idempotent=True
            )
            if went_back is not None:
                seq = await self._client.call(
                    "identity.check", lambda r: r.get(went_back), idempotent=True
                )
                if int(seq or 0) > self._highest.get(went_back, 0):
                    return  # another task of this process resumed already
            elif stored is not None and _text(stored) == self.epoch:
                return  # another task of this process resumed already
            counters = sorted(self._highest)
            highest = [self._highest[c] + ID_GAP for c in counters]
            reply = await self._client.call(
                "identity.resume",
                lambda r: self._resume([self.key, *counters], [secrets.token_hex(8), *highest]),
            )
            previous, self.epoch = self.epoch, _text(reply)
            STORE_DATA_LOSS.inc()
            self._last_loss = time.monotonic()
            loss = {
                "at": utc_now_iso(),
                "previous_epoch": previous,
                "epoch": self.epoch,
                "found": (
                    "no epoch"
                    if stored is None
                    else f"{went_back} behind ids already seen"
                    if went_back is not None
                    else "another epoch"
                ),
                "ids_resume_after": dict(zip(counters, highest, strict=True)),
            }
            self.losses = [*self.losses[-9:], loss]
            log.error("store_data_lost", **loss)
        if self.on_data_lost is not None:
            await self.on_data_lost()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                stored = await self._client.call(
                    "identity.check", lambda r: r.get(self.key), idempotent=True
                )
                if stored is None or _text(stored) != self.epoch:
                    await self.resume()
            except StoreUnavailable:
                continue  # an outage is the breaker's business; the check runs again
            except Exception:
                log.exception("epoch_check_failed")

    def status(self) -> dict[str, Any]:
        """For `/ready?verbose`: the epoch joined and the losses found."""
        return {"epoch": self.epoch, "losses": self.losses}

    def recently_lost(self) -> bool:
        """A loss was found in the last `REPORT_SECONDS` (the check reports degraded)."""
        last = self._last_loss
        return last is not None and time.monotonic() - last < REPORT_SECONDS

    async def close(self) -> None:
        """Stop checking (shutdown)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
