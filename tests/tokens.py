"""Tokens a server must refuse, for the unit tests of the codec and the end-to-end auth tests.

Each starts from the claims a real token carries and breaks exactly one thing, so a refusal
proves that one check (not a missing claim the token happens to lack as well).
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from jose import jwt

ISSUER = AUDIENCE = "resilient-api"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def real_claims(subject: str = "1", lifetime: int = 1800) -> dict[str, object]:
    """What a freshly issued token holds (with a credential no account has)."""
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now,
        "exp": now + lifetime,
        "jti": "test-token-id",
        "crd": "not-a-real-credential",
    }


def forged_tokens(key: str) -> list[object]:
    """`pytest.param`s of tokens that are expired, unsigned, signed with another key or another
    algorithm, missing a required claim, from the future, too long-lived, for another audience
    or issuer, or marked with critical extensions — each refused by a server whose key is `key`."""
    claims = real_claims()
    now = int(time.time())

    def signed(
        changes: dict[str, object], *, drop: str = "", headers: dict[str, object] | None = None
    ) -> str:
        body = {**claims, **changes}
        body.pop(drop, None)
        return jwt.encode(body, key, algorithm="HS256", headers=headers)

    unsigned = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + "."
    return [
        pytest.param(signed({"iat": now - 7200, "exp": now - 3600}), id="expired"),
        pytest.param(unsigned, id="alg-none"),
        pytest.param(jwt.encode(claims, "another-key-" * 4, algorithm="HS256"), id="other-key"),
        pytest.param(jwt.encode(claims, key, algorithm="HS512"), id="other-algorithm"),
        pytest.param(signed({}, drop="exp"), id="no-exp"),
        pytest.param(signed({}, drop="iat"), id="no-iat"),
        pytest.param(signed({}, drop="sub"), id="no-sub"),
        pytest.param(signed({}, drop="jti"), id="no-jti"),
        pytest.param(signed({"iat": now + 3600, "exp": now + 5400}), id="issued-in-future"),
        pytest.param(signed({"exp": 2**70}), id="exp-2-to-the-70"),
        pytest.param(signed({"exp": now + 30 * 24 * 3600}), id="lives-a-month"),
        pytest.param(signed({"aud": "another-service"}), id="other-audience"),
        pytest.param(signed({"iss": "someone-else"}), id="other-issuer"),
        pytest.param(signed({}, headers={"crit": ["exp"]}), id="crit-header"),
        pytest.param("not.a.token", id="garbage"),
    ]
