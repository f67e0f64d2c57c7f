"""JWT issuing and verification, and password hashing."""

from __future__ import annotations

import pytest
from jose import jwt

from app.core.exceptions import InvalidTokenError
from app.core.security import PasswordHasher, TokenCodec
from tests.tokens import forged_tokens

KEY = "unit-test-signing-key-of-at-least-32-bytes"


def test_issued_token_round_trips_with_every_registered_claim() -> None:
    codec = TokenCodec(KEY, "HS256", 30)
    issued = codec.issue("42", codec.credential("42", "stamp"))
    assert issued.expires_in == 1800
    claims = jwt.get_unverified_claims(issued.token)
    assert set(claims) == {"iss", "aud", "sub", "iat", "exp", "jti", "crd"}
    assert (claims["iss"], claims["aud"]) == ("resilient-api", "resilient-api")
    assert claims["exp"] - claims["iat"] == 1800
    decoded = codec.decode(issued.token)
    assert (decoded.subject, decoded.credential) == ("42", codec.credential("42", "stamp"))
    assert decoded.token_id == claims["jti"]


def test_the_credential_changes_with_any_part_and_the_key() -> None:
    codec = TokenCodec(KEY, "HS256", 30)
    assert codec.credential("1", "a") != codec.credential("1", "b")
    assert codec.credential("1", "a") != codec.credential("2", "a")
    other = TokenCodec("another-unit-test-key-of-32-bytes!!", "HS256", 30)
    assert codec.credential("1", "a") != other.credential("1", "a")


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
