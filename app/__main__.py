"""`python -m app`: validate the settings, then serve with uvicorn as the settings say.

This is the one place that knows how the server is started (`make run`, the tests and the
container all use it), so uvicorn's own options cannot drift from the app's settings.
"""

from __future__ import annotations

import sys

import uvicorn

from app.core.config import SettingsError, get_settings


def main() -> None:
    """Start the server, or exit with status 2 and one line naming the bad setting."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(
        "app.main:app",
        host=settings.host,
        port=settings.port,
        # Logging is configured by the app (structlog); uvicorn must not install its own.
        log_config=None,
        access_log=False,
        # Our ClientIdentifier decides whom to believe from APP_TRUSTED_PROXIES; uvicorn's
        # default would trust X-Forwarded-For from 127.0.0.1 whatever that setting says.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
    )


if __name__ == "__main__":
    main()
