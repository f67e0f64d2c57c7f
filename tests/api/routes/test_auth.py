"""The auth routes' contract, in process: the token is never cached, `/me` needs it, and a
logout revokes that token only, or with `?everywhere=true` every token of the account."""

from __future__ import annotations

import httpx

from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD

AUTH = "/api/v1/auth"


async def _token(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(
        f"{AUTH}/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_a_token_is_never_stored_by_a_cache(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{AUTH}/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] > 0


async def test_a_wrong_password_is_a_401_problem_that_names_no_account(
    client: httpx.AsyncClient,
) -> None:
    wrong = await client.post(
        f"{AUTH}/token", data={"username": ADMIN_EMAIL, "password": "not-the-password"}
    )
    unknown = await client.post(
        f"{AUTH}/token", data={"username": "nobody@example.com", "password": "not-the-password"}
    )
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert "token" not in response.json()
    # The same answer either way: a caller cannot tell which accounts exist.
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_me_needs_a_bearer_token_and_names_its_account(client: httpx.AsyncClient) -> None:
    anonymous = await client.get(f"{AUTH}/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    me = await client.get(f"{AUTH}/me", headers=await _token(client))
    assert me.status_code == 200
    assert me.json()["email"] == ADMIN_EMAIL
    assert "password" not in me.text


async def test_logout_revokes_that_token_only_and_everywhere_revokes_them_all(
    client: httpx.AsyncClient,
) -> None:
    first, second, third = [await _token(client) for _ in range(3)]
    assert (await client.post(f"{AUTH}/logout", headers=first)).status_code == 204
    assert (await client.get(f"{AUTH}/me", headers=first)).status_code == 401
    assert (await client.get(f"{AUTH}/me", headers=second)).status_code == 200
    everywhere = await client.post(f"{AUTH}/logout", params={"everywhere": "true"}, headers=second)
    assert everywhere.status_code == 204
    assert (await client.get(f"{AUTH}/me", headers=third)).status_code == 401
    # A logged-out token cannot log out again (nor learn anything by trying).
    assert (await client.post(f"{AUTH}/logout", headers=first)).status_code == 401
