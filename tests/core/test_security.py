"""JWT issuing and verification, and password hashing."""

from __future__ import annotations

import pytest
from jose import jwt

from app.core.security import InvalidTokenError, PasswordHasher, TokenCodec
from tests.tokens import forged_tokens

KEY = "unit-test-signing-key-of-at-least-32-bytes"


def test_issued_token_round_trips_with_required_claims() -> None:
    codec = TokenCodec(KEY, "HS256", 30, clock=lambda: 1_000_000.0)
    issued = codec.issue("42")
    assert issued.expires_in == 1800
    claims = jwt.get_unverified_claims(issued.token)
    assert claims == {"sub": "42", "iat": 1_000_000, "exp": 1_001_800}
    # Verification uses the real clock, so re-issue one that is current.
    assert (
        TokenCodec(KEY, "HS256", 30).decode(TokenCodec(KEY, "HS256", 30).issue("42").token).subject
        == "42"
    )


@pytest.mark.parametrize(
    "token",
    [*forged_tokens(KEY), pytest.param("", id="empty")],
)
def test_bad_tokens_are_refused(token: str) -> None:
    codec = TokenCodec(KEY, "HS256", 30)
    with pytest.raises(InvalidTokenError):
        codec.decode(token)
    assert codec.subject_or_none(token) is None


async def test_password_hashes_verify_and_are_salted() -> None:
    hasher = PasswordHasher(rounds=4)
    first = await hasher.hash("correct horse")
    second = await hasher.hash("correct horse")
    assert first != second
    assert "correct horse" not in first
    assert await hasher.verify("correct horse", first)
    assert not await hasher.verify("wrong horse", first)


async def test_verify_without_a_hash_fails() -> None:
    assert not await PasswordHasher(rounds=4).verify("anything", None)
