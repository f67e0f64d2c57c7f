"""The app with no middleware at all: the baseline of bench/chain_overhead.py.

Run as `python -m bench.bare_app`; it reads the same settings as `python -m app`.
"""

from __future__ import annotations

from app.__main__ import serve
from app.core.config import get_settings
from app.main import create_app

if __name__ == "__main__":
    settings = get_settings()
    bare = create_app(settings)
    bare.user_middleware.clear()  # the stack is built on first request, so this removes it all
    serve(settings, bare)
