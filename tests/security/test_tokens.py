"""A token acts only as the user it was issued to, under the credentials it was issued with."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.e2e.helpers import admin_headers, bearer, login, new_user_with_token, register
from tests.live_server import LiveServer

ME = "/api/v1/auth/me"
USERS = "/api/v1/users"


def test_a_token_never_acts_as_a_new_user_with_the_old_id(server_factory: ServerFactory) -> None:
    # Two servers with one signing key and no snapshot: a restart, ids starting over.
    before = server_factory()
    with httpx.Client(base_url=before.base_url) as http:
        old, auth = new_user_with_token(http)
    before.stop()
    after = server_factory()
    with httpx.Client(base_url=after.base_url) as http:
        new = register(http)
        assert new["id"] == old["id"]  # the same id, another person
        assert http.get(ME, headers=auth).status_code == 401
        assert (
            http.patch(f"{USERS}/{new['id']}", json={"name": "x"}, headers=auth).status_code == 401
        )


def test_a_new_password_ends_every_earlier_token(http: httpx.Client) -> None:
    user, auth = new_user_with_token(http)
    other = bearer(login(http, user["email"], "password123"))
    changed = http.patch(
        f"{USERS}/{user['id']}",
        json={"password": "brand-new-pass-1", "current_password": "password123"},
        headers=auth,
    )
    assert changed.status_code == 200
    for headers in (auth, other):
        assert http.get(ME, headers=headers).status_code == 401
    assert (
        http.get(ME, headers=bearer(login(http, user["email"], "brand-new-pass-1"))).status_code
        == 200
    )


def test_a_stolen_token_alone_cannot_change_the_password(http: httpx.Client) -> None:
    user, auth = new_user_with_token(http)
    url = f"{USERS}/{user['id']}"
    assert http.patch(url, json={"password": "taken-over-1"}, headers=auth).status_code == 422
    wrong = {"password": "taken-over-1", "current_password": "not-it-at-all"}
    assert http.patch(url, json=wrong, headers=auth).status_code == 403
    assert login(http, user["email"], "password123")


def test_deactivation_then_reactivation_does_not_revive_tokens(http: httpx.Client) -> None:
    user, auth = new_user_with_token(http)
    admin = admin_headers(http)
    url = f"{USERS}/{user['id']}"
    assert http.patch(url, json={"is_active": False}, headers=admin).status_code == 200
    assert http.patch(url, json={"is_active": True}, headers=admin).status_code == 200
    assert http.get(ME, headers=auth).status_code == 401


def test_logout_revokes_the_token_and_everywhere_revokes_them_all(http: httpx.Client) -> None:
    user, first = new_user_with_token(http)
    second = bearer(login(http, user["email"], "password123"))
    third = bearer(login(http, user["email"], "password123"))
    assert http.post("/api/v1/auth/logout", headers=first).status_code == 204
    assert http.get(ME, headers=first).status_code == 401
    assert http.get(ME, headers=second).status_code == 200
    assert http.post("/api/v1/auth/logout?everywhere=true", headers=second).status_code == 204
    for headers in (second, third):
        assert http.get(ME, headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("lookalike", "status"),
    [
        ("\u0430da@example.com", 422),  # a Cyrillic a
        ("\uff41da@example.com", 409),  # a fullwidth a: NFKC makes it the same address
        ("ADA@example.com", 409),  # the same address in other letter case
        ("stra\u00dfe@example.com", 422),  # not ASCII: it would squat strasse@ by casefolding
    ],
    ids=["cyrillic", "fullwidth", "upper-case", "sharp-s"],
)
def test_look_alike_emails_are_not_new_accounts(
    live_server: LiveServer, lookalike: str, status: int
) -> None:
    with httpx.Client(base_url=live_server.base_url) as http:
        if http.post(
            USERS, json={"email": "ada@example.com", "name": "Ada", "password": "password123"}
        ).status_code not in (201, 409):
            raise AssertionError("ada@example.com could not be registered")
        response = http.post(
            USERS, json={"email": lookalike, "name": "Mallory", "password": "password123"}
        )
        assert response.status_code == status, response.text


def test_a_revoked_token_selects_no_ones_scoring_jobs(http: httpx.Client) -> None:
    # The review's N12: after logout?everywhere=true the same token still read its owner's job.
    _, auth = new_user_with_token(http)
    body = {"records": [{"id": "a", "features": {"x": 1}}], "weights": {"x": 1}}
    location = http.post("/api/v1/scoring/jobs", json=body, headers=auth).headers["location"]
    for _ in range(100):
        if http.get(location, headers=auth).json()["status"] == "done":
            break
        time.sleep(0.05)
    assert http.get(location, headers=auth).status_code == 200
    assert http.post("/api/v1/auth/logout?everywhere=true", headers=auth).status_code == 204
    assert http.get(location, headers=auth).status_code == 404
