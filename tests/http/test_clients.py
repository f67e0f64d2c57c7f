"""Client address behind trusted proxies, and the client key."""

from __future__ import annotations

import ipaddress

from starlette.types import Scope

from app.http.clients import ClientIdentifier

PROXY = [ipaddress.ip_network("10.0.0.0/8")]


def _scope(peer: str, forwarded: str | None = None, authorization: str | None = None) -> Scope:
    headers = []
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    return {"type": "http", "client": (peer, 1234), "headers": headers}


def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    identifier = ClientIdentifier(trusted_proxies=PROXY)
    assert identifier.client_address(_scope("203.0.113.9", "1.2.3.4")) == "203.0.113.9"


def test_forwarded_for_is_ignored_when_no_proxy_is_trusted() -> None:
    identifier = ClientIdentifier()
    assert identifier.client_address(_scope("127.0.0.1", "1.2.3.4")) == "127.0.0.1"


def test_trusted_proxy_yields_the_rightmost_untrusted_hop() -> None:
    identifier = ClientIdentifier(trusted_proxies=PROXY)
    # The client put a fake address first; the proxies appended the real one.
    scope = _scope("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.5")
    assert identifier.client_address(scope) == "198.51.100.7"


def test_garbage_in_the_chain_stops_at_the_last_trusted_hop() -> None:
    identifier = ClientIdentifier(trusted_proxies=PROXY)
    assert identifier.client_address(_scope("10.0.0.2", "not-an-ip, 10.0.0.9")) == "10.0.0.9"


def test_client_key_prefers_a_valid_token_subject() -> None:
    identifier = ClientIdentifier(token_subject=lambda t: "7" if t == "good" else None)
    assert identifier.client_key(_scope("1.1.1.1", authorization="Bearer good")) == "user:7"
    assert identifier.client_key(_scope("1.1.1.1", authorization="Bearer bad")) == "ip:1.1.1.1"
    assert identifier.client_key(_scope("1.1.1.1")) == "ip:1.1.1.1"


def test_missing_client_is_unknown() -> None:
    assert ClientIdentifier().client_address({"type": "http", "headers": []}) == "unknown"
