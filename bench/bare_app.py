"""The app with no middleware at all: the baseline of bench/chain_overhead.py.

Run as `python -m bench.bare_app`; it reads the same settings as `python -m app`.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.__main__ import serve
from app.core.config import Settings, get_settings
from app.core.lifecycle import Lifecycle
from app.main import create_app


def bare_app(settings: Settings, lifecycle: Lifecycle) -> FastAPI:
    """The app with its middleware list emptied."""
    bare = create_app(settings, lifecycle=lifecycle)
    bare.user_middleware.clear()  # the stack is built on first request, so this removes it all
    return bare


if __name__ == "__main__":
    serve(get_settings(), bare_app)
