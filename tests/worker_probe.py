"""A task for a real CPU worker that reports what the worker has imported; it imports nothing
itself, so what it reports is what the pool's own start-up and the warm-up loaded."""

from __future__ import annotations

import sys


def top_level_modules() -> list[str]:
    """The top-level packages loaded in this process."""
    return sorted({name.split(".")[0] for name in sys.modules})
