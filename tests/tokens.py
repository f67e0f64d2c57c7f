"""Tokens a server must refuse, for the unit tests of the codec and the end-to-end auth tests."""

from __future__ import annotations

import base64
import json

import pytest
from jose import jwt

FAR_FUTURE = 4_000_000_000


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged_tokens(key: str) -> list[object]:
    """`pytest.param`s of tokens that are expired, unsigned, signed with another key or another
    algorithm, or missing a required claim — each refused by a server whose key is `key`."""
    claims = {"sub": "1", "iat": 1, "exp": FAR_FUTURE}
    unsigned = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + "."
    return [
        pytest.param(jwt.encode({**claims, "exp": 2}, key, algorithm="HS256"), id="expired"),
        pytest.param(unsigned, id="alg-none"),
        pytest.param(jwt.encode(claims, "another-key-" * 4, algorithm="HS256"), id="other-key"),
        pytest.param(jwt.encode(claims, key, algorithm="HS512"), id="other-algorithm"),
        pytest.param(jwt.encode({"sub": "1", "iat": 1}, key, algorithm="HS256"), id="no-exp"),
        pytest.param(
            jwt.encode({"sub": "1", "exp": FAR_FUTURE}, key, algorithm="HS256"), id="no-iat"
        ),
        pytest.param(
            jwt.encode({"iat": 1, "exp": FAR_FUTURE}, key, algorithm="HS256"), id="no-sub"
        ),
        pytest.param("not.a.token", id="garbage"),
    ]
