"""The auth contract against a real server."""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx
import pytest
from jose import jwt

from tests.conftest import ServerFactory
from tests.e2e.helpers import TOKEN, assert_problem, bearer, login, register, unique_email
from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD, TEST_ENV
from tests.tokens import forged_tokens, real_claims

ME = "/api/v1/auth/me"
KEY = TEST_ENV["APP_JWT_SECRET_KEY"]


def test_login_issues_a_bearer_token_for_me(http: httpx.Client) -> None:
    email = unique_email("auth")
    user = register(http, email)
    response = http.post(TOKEN, data={"username": email, "password": "password123"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    claims = jwt.get_unverified_claims(body["access_token"])
    assert claims["sub"] == str(user["id"])
    assert claims["exp"] - claims["iat"] == 30 * 60
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    me = http.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == user


def test_email_login_is_case_insensitive(http: httpx.Client) -> None:
    email = unique_email("auth")
    register(http, email)
    assert login(http, email.upper(), "password123")


def test_admin_exists_at_start_up(http: httpx.Client) -> None:
    me = http.get(ME, headers=bearer(login(http, ADMIN_EMAIL, ADMIN_PASSWORD))).json()
    assert (me["email"], me["role"]) == (ADMIN_EMAIL, "admin")


def _failed_login(http: httpx.Client, email: str, password: str) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    response = http.post(TOKEN, data={"username": email, "password": password})
    return response, time.perf_counter() - start


def test_unknown_email_and_wrong_password_get_the_same_answer(http: httpx.Client) -> None:
    email = unique_email("auth")
    register(http, email)
    wrong, _ = _failed_login(http, email, "wrong-password")
    unknown, _ = _failed_login(http, unique_email("nobody"), "wrong-password")
    for response in (wrong, unknown):
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"

    def strip(response: httpx.Response) -> dict[str, Any]:
        return {k: v for k, v in response.json().items() if k != "request_id"}

    assert strip(wrong) == strip(unknown)


def test_unknown_email_and_wrong_password_take_about_the_same_time(
    server_factory: ServerFactory,
) -> None:
    # A hash cost at which bcrypt is most of a login (about 60 ms here; the tests' usual 4
    # rounds take a millisecond, lost in a busy machine's noise).
    server = server_factory({"APP_BCRYPT_ROUNDS": "10"})
    http = httpx.Client(base_url=server.base_url, timeout=30)
    email = unique_email("auth")
    register(http, email)
    # Interleaved, so both kinds see the same load when the machine is busy.
    wrong: list[float] = []
    unknown: list[float] = []
    for _ in range(15):
        wrong.append(_failed_login(http, email, "wrong-password")[1])
        unknown.append(_failed_login(http, unique_email("nobody"), "wrong-password")[1])
    # Generous bound for a noisy machine: without the dummy hash, an unknown email would skip
    # bcrypt entirely and answer many times faster.
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 < ratio < 2.0, (statistics.median(unknown), statistics.median(wrong))
    http.close()


def test_a_password_bcrypt_cannot_take_is_just_a_wrong_password(http: httpx.Client) -> None:
    # Found by schemathesis: a NUL byte made bcrypt raise, and the login answered 500.
    for password in ("bad\x00password", "x" * 100):
        response = http.post(TOKEN, data={"username": ADMIN_EMAIL, "password": password})
        assert_problem(response, 401)


def test_login_form_with_missing_fields_gets_422(http: httpx.Client) -> None:
    body = assert_problem(http.post(TOKEN, data={"username": "x@example.com"}), 422)
    assert any("password" in err["loc"] for err in body["errors"])


def test_deactivated_account_cannot_log_in_or_use_its_token(http: httpx.Client) -> None:
    email = unique_email("auth")
    user = register(http, email)
    token = login(http, email, "password123")
    patched = http.patch(
        f"/api/v1/users/{user['id']}", json={"is_active": False}, headers=bearer(token)
    )
    assert patched.status_code == 200
    assert_problem(http.get(ME, headers=bearer(token)), 401)
    assert_problem(http.post(TOKEN, data={"username": email, "password": "password123"}), 403)


@pytest.mark.parametrize(
    "token",
    [
        *forged_tokens(KEY),
        pytest.param(
            jwt.encode({"sub": "abc", "iat": 1, "exp": 4_000_000_000}, KEY, algorithm="HS256"),
            id="bad-sub",
        ),
    ],
)
def test_bad_tokens_get_401(http: httpx.Client, token: str) -> None:
    response = http.get(ME, headers=bearer(token))
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer"}]
)
def test_missing_token_gets_401(http: httpx.Client, headers: dict[str, str]) -> None:
    response = http.get(ME, headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_even_the_signing_key_cannot_forge_a_token_without_the_credential(
    http: httpx.Client,
) -> None:
    # Every claim right and signed with the real key, but no account's credential stamp: the
    # key alone does not make a token act as the admin.
    token = jwt.encode(real_claims(subject="1"), KEY, algorithm="HS256")
    assert http.get(ME, headers=bearer(token)).status_code == 401
    # ...while the token login issues for the admin works (the failures above are the token's).
    issued = http.post(TOKEN, data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert (
        http.get(ME, headers=bearer(issued.json()["access_token"])).json()["email"] == ADMIN_EMAIL
    )
