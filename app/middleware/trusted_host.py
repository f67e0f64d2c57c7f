"""Trusted hosts: a request whose `Host` is not one of this service's names gets 400.

A browser judges "same origin" by the name in the address bar, and DNS rebinding points a name
an attacker owns at this server (a laptop's 127.0.0.1, say): the attacker's page is then "same
origin" with it. Checking `Host` against the names the service is really served under closes
that, for HTTP and for the WebSocket handshake (whose same-origin check reads `Host`). The
probes and `/metrics` answer any `Host`: Kubernetes and Prometheus address pods by IP.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from app.http.paths import NO_PATHS, Paths
from app.http.problems import refuse


def host_name(host_header: str) -> str:
    """The name in a `Host` value, without its port (`[::1]:8000` -> `::1`), lower-cased."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostPatterns:
    """Names (`api.example.com`), suffix wildcards (`*.example.com`) or `*` for any."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.any = "*" in patterns
        self._names = frozenset(p.lower() for p in patterns if not p.startswith("*"))
        self._suffixes = tuple(p[1:].lower() for p in patterns if p.startswith("*."))

    def allows(self, host_header: str) -> bool:
        """Whether a request with this `Host` is addressed to this service."""
        if self.any:
            return True
        name = host_name(host_header)
        return name in self._names or (bool(self._suffixes) and name.endswith(self._suffixes))


class TrustedHostMiddleware:
    """400 problem details for HTTP, a refused handshake for WebSockets, when `Host` is not
    allowed; the `exempt` paths answer any `Host`."""

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: Sequence[str], exempt: Paths = NO_PATHS
    ) -> None:
        self.app = app
        self.hosts = HostPatterns(allowed_hosts)
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hosts.any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                break
        if self.hosts.allows(host) or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        await refuse(
            scope, receive, send, 400, "The Host header names no host this service is served under."
        )
