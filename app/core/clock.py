"""Wall-clock time, in one place: every timestamp the app writes is timezone-aware UTC.

(Durations and expiry use `time.monotonic`, injected as a clock where they matter.)
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def utc_now_iso() -> str:
    """The current time in UTC as ISO 8601 (`2026-01-31T12:00:00.123456+00:00`)."""
    return datetime.now(UTC).isoformat()
