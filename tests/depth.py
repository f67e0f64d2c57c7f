"""How hard the load tests push: `make test` runs them at a size that proves the behaviour in
seconds; `make soak` (SOAK=1) runs the same tests at full size."""

from __future__ import annotations

import os

FULL = os.environ.get("SOAK") == "1"


def scaled(short: int, full: int) -> int:
    """`full` under `make soak`, `short` otherwise."""
    return full if FULL else short
