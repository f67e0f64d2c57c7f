"""Which Redis errors a read is tried again after: a refused or reset connection, a Redis
loading or read-only for a moment; never a timeout (a stall), never an error Redis answered."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    BusyLoadingError,
    ConnectionError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.redis.client import is_outage, worth_retrying


@pytest.mark.parametrize(
    ("error", "outage", "retry"),
    [
        (ConnectionError("Connection refused"), True, True),
        (BusyLoadingError("LOADING"), True, True),
        (ReadOnlyError("READONLY"), True, True),
        (RedisTimeoutError("Timeout reading from socket"), True, False),
        (TimeoutError("no answer within 1 s"), True, False),
        (ResponseError("OOM command not allowed"), True, False),
        (ResponseError("WRONGTYPE Operation against a key"), False, False),
    ],
)
def test_what_counts_as_an_outage_and_what_is_worth_a_retry(
    error: Exception, outage: bool, retry: bool
) -> None:
    assert is_outage(error) is outage
    assert worth_retrying(error) is retry
