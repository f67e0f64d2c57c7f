"""Who is calling: the client address (behind trusted proxies) and the client key.

The client key identifies a caller for per-client state (idempotency keys, scoring jobs, the
rate limit on routes that need a token): the token's subject when a valid bearer token is sent,
else the client address. Routes open to everyone are rate-limited by address alone, so a token
of a throwaway account cannot buy a fresh quota there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from starlette.datastructures import Headers
from starlette.types import Scope

from app.core.config import IpNetwork
from app.http.asgi import get_header

UNKNOWN_CLIENT = "unknown"


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


class ClientIdentifier:
    """Resolves the client address and key of a request.

    `X-Forwarded-For` is believed only when the direct peer is a trusted proxy; the client is
    then the right-most address that is not itself a trusted proxy (the left-most entries are
    whatever the client chose to send, so they prove nothing).
    """

    def __init__(
        self,
        *,
        trusted_proxies: Sequence[IpNetwork] = (),
        token_subject: Callable[[str], str | None] | None = None,
    ) -> None:
        self._trusted = tuple(trusted_proxies)
        self._token_subject = token_subject

    def _is_trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self._trusted)

    def peer_is_trusted_proxy(self, scope: Scope) -> bool:
        """Whether the direct peer is one of the trusted proxies."""
        client = scope.get("client")
        peer_ip = _parse_ip(client[0]) if client else None
        return peer_ip is not None and self._is_trusted(peer_ip)

    def client_address(self, scope: Scope) -> str:
        """The address of the client, seen through trusted proxies only."""
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        if peer is None:
            return UNKNOWN_CLIENT
        if not self._trusted:
            return peer
        peer_ip = _parse_ip(peer)
        if peer_ip is None or not self._is_trusted(peer_ip):
            return peer
        forwarded = Headers(scope=scope).getlist("x-forwarded-for")
        hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            hop_ip = _parse_ip(hop)
            if hop_ip is None:
                # Garbage in the chain: stop at the last address we could trust.
                break
            if not self._is_trusted(hop_ip):
                return str(hop_ip)
            peer = str(hop_ip)
        return peer

    def address_key(self, scope: Scope) -> str:
        """`ip:<client address>`: the key of a request whatever token it carries."""
        return f"ip:{self.client_address(scope)}"

    def client_key(self, scope: Scope) -> str:
        """`user:<subject>` for a valid bearer token, else `ip:<client address>`."""
        if self._token_subject is not None:
            authorization = get_header(scope, b"authorization") or ""
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                subject = self._token_subject(token.strip())
                if subject is not None:
                    return f"user:{subject}"
        return self.address_key(scope)
