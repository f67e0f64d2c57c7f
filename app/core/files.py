"""Files the service writes for itself (snapshot, audit log, lock files): readable by its own
user only, since they hold password hashes and what users wrote."""

from __future__ import annotations

import os

PRIVATE_MODE = 0o600


def private_opener(path: str, flags: int) -> int:
    """An `opener` for `open`/`aiofiles.open` that creates the file with mode 0600."""
    return os.open(path, flags, PRIVATE_MODE)
