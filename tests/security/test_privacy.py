"""Which emails exist, and whose account is an admin, is not public (the review's N7: every
account's email and role were readable through `GET /users`, `?email=`, and `user.*` events,
which turned the login back-off into "lock out everyone")."""

from __future__ import annotations

import httpx

from tests.e2e.helpers import USERS, admin_headers, new_user_with_token
from tests.live_server import ADMIN_EMAIL


def test_anonymous_readers_see_public_fields_only(http: httpx.Client) -> None:
    user, _ = new_user_with_token(http)
    listed = http.get(USERS, params={"limit": 100}).json()["items"]
    fetched = http.get(f"{USERS}/{user['id']}").json()
    for item in [*listed, fetched]:
        assert set(item) == {"id", "name", "is_active", "created_at", "updated_at"}
    assert ADMIN_EMAIL not in http.get(USERS, params={"limit": 100}).text
    assert http.get(USERS, params={"email": user["email"]}).status_code == 403


def test_users_see_their_own_email_and_admins_see_everyones(http: httpx.Client) -> None:
    user, auth = new_user_with_token(http)
    other, other_auth = new_user_with_token(http)
    own = http.get(f"{USERS}/{user['id']}", headers=auth)
    assert (own.json()["email"], own.json()["role"]) == (user["email"], "user")
    assert "Authorization" in own.headers["vary"]
    assert "email" not in http.get(f"{USERS}/{other['id']}", headers=auth).json()
    assert http.get(USERS, params={"email": user["email"]}, headers=auth).status_code == 403
    mine = [
        item
        for item in http.get(USERS, params={"limit": 100}, headers=other_auth).json()["items"]
        if "email" in item
    ]
    assert [item["id"] for item in mine] == [other["id"]]
    admin = admin_headers(http)
    found = http.get(USERS, params={"email": user["email"]}, headers=admin).json()["items"]
    assert [(item["id"], item["email"]) for item in found] == [(user["id"], user["email"])]
    assert http.get(f"{USERS}/{other['id']}", headers=admin).json()["email"] == other["email"]
    # A token that is not valid reads as anonymous, never as someone.
    forged = http.get(f"{USERS}/{user['id']}", headers={"Authorization": "Bearer x.y.z"})
    assert forged.status_code == 200
    assert "email" not in forged.json()


def test_user_events_carry_no_email(http: httpx.Client) -> None:
    user, auth = new_user_with_token(http)
    http.patch(f"{USERS}/{user['id']}", json={"name": "Renamed"}, headers=auth)
    events = http.get("/api/v1/events", params={"topic": "user.*", "limit": 100}).json()["items"]
    mine = [event for event in events if event["data"].get("id") == user["id"]]
    assert {event["topic"] for event in mine} == {"user.created", "user.updated"}
    for event in mine:
        assert "email" not in event["data"]
        assert "role" not in event["data"]
    assert "@" not in http.get("/api/v1/events", params={"topic": "user.*"}).text
