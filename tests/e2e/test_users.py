"""The users contract against a real server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.helpers import (
    USERS,
    admin_headers,
    assert_problem,
    bearer,
    login,
    new_user_with_token,
    register,
    unique_email,
)
from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer


def _snapshot(http: httpx.Client) -> list[dict[str, object]]:
    """Every user, to prove that a refused request changed nothing."""
    items: list[dict[str, object]] = []
    skip = 0
    while True:
        page = http.get(USERS, params={"skip": skip, "limit": 100}).json()
        items += page["items"]
        skip += 100
        if skip >= page["total"]:
            return items


async def _admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


# --- create -----------------------------------------------------------------------------------


def test_create_returns_201_location_etag_and_no_secret(http: httpx.Client) -> None:
    email = unique_email()
    response = http.post(USERS, json={"email": email, "name": "Ada", "password": "password123"})
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"{USERS}/{body['id']}"
    assert response.headers["etag"] == f'"{body["id"]}-1"'
    assert body["email"] == email
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert "password" not in response.text
    assert "$2b$" not in response.text
    # Its owner sees every field; anyone else the public ones (no email, no role).
    token = login(http, email, "password123")
    fetched = http.get(response.headers["location"], headers=bearer(token))
    assert fetched.json() == body
    anonymous = http.get(response.headers["location"]).json()
    assert anonymous == {k: v for k, v in body.items() if k not in ("email", "role")}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "name": "A", "password": "password123"}, "email"),
        ({"email": "x@example.com", "name": "A", "password": "short"}, "password"),
        ({"email": "x@example.com", "name": "A", "password": "é" * 37}, "password"),
        ({"email": "x@example.com", "name": "A", "password": "pass\u0000word123"}, "password"),
        ({"email": "x@example.com", "name": "   ", "password": "password123"}, "name"),
        ({"email": "x@example.com", "name": 5, "password": "password123"}, "name"),
        ({"email": "x@example.com", "password": "password123"}, "name"),
        (
            {"email": "x@example.com", "name": "A", "password": "password123", "role": "admin"},
            "role",
        ),
    ],
)
def test_invalid_create_gets_422_naming_the_field_and_creates_nothing(
    http: httpx.Client, payload: dict[str, object], field: str
) -> None:
    before = _snapshot(http)
    response = http.post(USERS, json=payload)
    body = assert_problem(response, 422)
    assert any(field in err["loc"] for err in body["errors"]), body
    assert all(set(err) == {"loc", "msg", "type"} for err in body["errors"])
    assert _snapshot(http) == before


def test_rejected_password_is_never_echoed(http: httpx.Client) -> None:
    response = http.post(USERS, json={"email": "x@example.com", "name": "A", "password": "tiny7"})
    assert_problem(response, 422)
    assert "tiny7" not in response.text


def test_malformed_json_gets_422_not_500(http: httpx.Client) -> None:
    response = http.post(USERS, content=b'{"email": ', headers={"Content-Type": "application/json"})
    body = assert_problem(response, 422)
    assert body["errors"][0]["type"] == "json_invalid"


def test_a_body_that_is_not_utf8_gets_422_not_400_or_500(http: httpx.Client) -> None:
    response = http.post(
        USERS, content=b"\xff\xfe\x00garbage", headers={"Content-Type": "application/json"}
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["type"] == "json_invalid"


def test_taken_email_in_another_case_gets_409(http: httpx.Client) -> None:
    email = unique_email("case")
    register(http, email)
    before = _snapshot(http)
    response = http.post(
        USERS, json={"email": email.upper(), "name": "B", "password": "password123"}
    )
    assert_problem(response, 409)
    assert _snapshot(http) == before


async def test_simultaneous_creates_of_one_email_give_exactly_one_201(
    live_server: LiveServer,
) -> None:
    email = unique_email("race")
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    USERS, json={"email": email, "name": f"n{i}", "password": "password123"}
                )
                for i in range(20)
            )
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] + [409] * 19
        listed = await client.get(
            USERS, params={"email": email}, headers=await _admin_headers(client)
        )
        assert listed.json()["total"] == 1


def test_two_megabyte_body_gets_413_and_creates_nothing(http: httpx.Client) -> None:
    before = _snapshot(http)
    big = (
        b'{"email": "big@example.com", "name": "'
        + b"x" * 2_000_000
        + b'", "password": "password123"}'
    )
    response = http.post(USERS, content=big, headers={"Content-Type": "application/json"})
    assert_problem(response, 413)
    assert _snapshot(http) == before


def test_chunked_body_without_length_over_limit_gets_413(http: httpx.Client) -> None:
    before = _snapshot(http)

    def chunks() -> Iterator[bytes]:
        yield b'{"email": "chunk@example.com", "name": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'", "password": "password123"}'

    try:
        response = http.post(USERS, content=chunks(), headers={"Content-Type": "application/json"})
    except httpx.WriteError:
        pytest.fail("the server should answer 413, not reset the connection")
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)
    assert _snapshot(http) == before


# --- idempotency --------------------------------------------------------------------------------


def test_idempotent_repeat_replays_the_first_answer(http: httpx.Client) -> None:
    key = str(uuid.uuid4())
    payload = {"email": unique_email("idem"), "name": "I", "password": "password123"}
    first = http.post(USERS, json=payload, headers={"Idempotency-Key": f'"{key}"'})
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    second = http.post(USERS, json=payload, headers={"Idempotency-Key": key})  # bare form too
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"]
    assert second.json() == first.json()
    admin = admin_headers(http)
    assert http.get(USERS, params={"email": payload["email"]}, headers=admin).json()["total"] == 1


def test_idempotency_key_with_another_body_gets_422(http: httpx.Client) -> None:
    key = str(uuid.uuid4())
    payload = {"email": unique_email("idem"), "name": "I", "password": "password123"}
    assert http.post(USERS, json=payload, headers={"Idempotency-Key": key}).status_code == 201
    before = _snapshot(http)
    other = {**payload, "email": unique_email("idem")}
    response = http.post(USERS, json=other, headers={"Idempotency-Key": key})
    body = assert_problem(response, 422)
    assert body["type"] == "/problems/idempotency-key-reused"
    assert _snapshot(http) == before


def test_idempotent_replay_of_a_conflict_is_the_same_conflict(http: httpx.Client) -> None:
    email = unique_email("idem")
    register(http, email)
    key = str(uuid.uuid4())
    payload = {"email": email, "name": "I", "password": "password123"}
    first = http.post(USERS, json=payload, headers={"Idempotency-Key": key})
    second = http.post(USERS, json=payload, headers={"Idempotency-Key": key})
    assert_problem(first, 409)
    assert_problem(second, 409)
    assert second.headers["idempotent-replayed"] == "true"


async def test_idempotency_key_in_flight_gets_409(live_server: LiveServer) -> None:
    key = str(uuid.uuid4())
    payload = {"email": unique_email("flight"), "name": "F", "password": "password123"}
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post(USERS, json=payload, headers={"Idempotency-Key": key}) for _ in range(10))
        )
        codes = [r.status_code for r in responses]
        # Password hashing runs in a thread, so the first request is still in flight while the
        # others arrive: each of them is told so, or (if it came later) gets the replay.
        assert codes.count(201) >= 1
        assert set(codes) <= {201, 409}
        assert (
            sum(
                1
                for r in responses
                if r.status_code == 201 and "idempotent-replayed" not in r.headers
            )
            == 1
        )
        for response in responses:
            if response.status_code == 409:
                assert response.json()["type"] == "/problems/idempotency-key-in-flight"
        listed = await client.get(
            USERS, params={"email": payload["email"]}, headers=await _admin_headers(client)
        )
        assert listed.json()["total"] == 1


def test_malformed_idempotency_key_gets_422(http: httpx.Client) -> None:
    payload = {"email": unique_email(), "name": "I", "password": "password123"}
    response = http.post(USERS, json=payload, headers={"Idempotency-Key": "has space"})
    assert_problem(response, 422)


# --- read -------------------------------------------------------------------------------------


def test_list_pages_filters_and_sorts(http: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    names = [f"{tag} Zed", f"{tag} amy", f"{tag} Bob"]
    for name in names:
        register(http, name=name)
    page = http.get(USERS, params={"q": tag.upper(), "sort": "name"}).json()
    assert [u["name"] for u in page["items"]] == [f"{tag} amy", f"{tag} Bob", f"{tag} Zed"]
    assert (page["total"], page["skip"], page["limit"]) == (3, 0, 20)
    page = http.get(USERS, params={"q": tag, "sort": "-id", "skip": 1, "limit": 1}).json()
    assert [u["name"] for u in page["items"]] == [f"{tag} amy"]
    assert page["total"] == 3
    assert all(
        u["is_active"] for u in http.get(USERS, params={"is_active": "true"}).json()["items"]
    )


@pytest.mark.parametrize(
    "params",
    [
        {"skip": -1},
        {"limit": 0},
        {"limit": 1000},
        {"sort": "email"},
        {"is_active": "maybe"},
        {"limit": "x"},
    ],
)
def test_bad_list_parameters_get_422(http: httpx.Client, params: dict[str, str | int]) -> None:
    body = assert_problem(http.get(USERS, params=params), 422)
    assert body["errors"]


def test_get_missing_user_gets_404_and_bad_id_422(http: httpx.Client) -> None:
    assert_problem(http.get(f"{USERS}/999999"), 404)
    assert_problem(http.get(f"{USERS}/0"), 422)
    assert_problem(http.get(f"{USERS}/abc"), 422)


def test_if_none_match_with_current_tag_gets_304(http: httpx.Client) -> None:
    user = register(http)
    url = f"{USERS}/{user['id']}"
    etag = http.get(url).headers["etag"]
    response = http.get(url, headers={"If-None-Match": f'"nope", {etag}'})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert http.get(url, headers={"If-None-Match": '"nope"'}).status_code == 200


def test_head_has_the_headers_of_get_and_no_body(http: httpx.Client) -> None:
    user = register(http)
    url = f"{USERS}/{user['id']}"
    got = http.get(url)
    head = http.head(url)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("etag", "content-type", "content-length"):
        assert head.headers[name] == got.headers[name]
    assert http.head(f"{USERS}/999999").status_code == 404


def test_options_lists_allowed_methods(http: httpx.Client) -> None:
    response = http.options(f"{USERS}/1")
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"


def test_cors_preflight_is_answered_by_cors_not_by_options_route(http: httpx.Client) -> None:
    response = http.options(
        f"{USERS}/1",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "PATCH"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "PATCH" in response.headers["access-control-allow-methods"]


def test_wrong_method_gets_405_with_every_allowed_method(http: httpx.Client) -> None:
    response = http.delete(USERS)
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"
    response = http.request("TRACE", f"{USERS}/1")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"


# --- change -----------------------------------------------------------------------------------


def test_owner_patches_only_sent_fields_and_etag_moves(http: httpx.Client) -> None:
    user, auth = new_user_with_token(http)
    url = f"{USERS}/{user['id']}"
    response = http.patch(url, json={"name": "New Name"}, headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "New Name"
    assert body["email"] == user["email"]
    assert response.headers["etag"] == f'"{user["id"]}-2"'
    assert body["updated_at"] > user["updated_at"]


def test_patch_can_change_the_password(http: httpx.Client) -> None:
    user, auth = new_user_with_token(http)
    without = http.patch(f"{USERS}/{user['id']}", json={"password": "a-new-password"}, headers=auth)
    assert without.status_code == 422  # your own password: the current one is needed too
    response = http.patch(
        f"{USERS}/{user['id']}",
        json={"password": "a-new-password", "current_password": "password123"},
        headers=auth,
    )
    assert response.status_code == 200
    # The token used for the change was issued under the old password: it ends with it.
    assert http.get("/api/v1/auth/me", headers=auth).status_code == 401
    assert "a-new-password" not in response.text
    old = http.post(
        "/api/v1/auth/token", data={"username": user["email"], "password": "password123"}
    )
    assert old.status_code == 401
    new = http.post(
        "/api/v1/auth/token", data={"username": user["email"], "password": "a-new-password"}
    )
    assert new.status_code == 200


@pytest.mark.parametrize(
    "payload", [{"name": None}, {"role": "admin"}, {"is_active": "nope"}, {"email": "bad"}]
)
def test_bad_patch_gets_422_and_changes_nothing(
    http: httpx.Client, payload: dict[str, object]
) -> None:
    user, auth = new_user_with_token(http)
    url = f"{USERS}/{user['id']}"
    assert_problem(http.patch(url, json=payload, headers=auth), 422)
    assert http.get(url, headers=auth).json() == user


def test_put_replaces_and_requires_every_field(http: httpx.Client) -> None:
    user, auth = new_user_with_token(http)
    url = f"{USERS}/{user['id']}"
    assert_problem(http.put(url, json={"name": "Only"}, headers=auth), 422)
    email = unique_email("put")
    response = http.put(url, json={"email": email, "name": "Put", "is_active": True}, headers=auth)
    assert response.status_code == 200
    assert (response.json()["email"], response.json()["name"]) == (email, "Put")


def test_stale_if_match_returns_412_and_changes_nothing(http: httpx.Client) -> None:
    user, auth = new_user_with_token(http)
    url = f"{USERS}/{user['id']}"
    first_tag = http.get(url).headers["etag"]
    second = http.patch(url, json={"name": "Second"}, headers={**auth, "If-Match": first_tag})
    assert second.status_code == 200
    before = http.get(url).json()
    stale = {**auth, "If-Match": first_tag}
    assert_problem(http.patch(url, json={"name": "Third"}, headers=stale), 412)
    assert_problem(
        http.put(url, json={"email": user["email"], "name": "T", "is_active": True}, headers=stale),
        412,
    )
    assert_problem(http.delete(url, headers=stale), 412)
    assert http.get(url).json() == before
    current = {**auth, "If-Match": second.headers["etag"]}
    assert http.patch(url, json={"name": "Third"}, headers=current).status_code == 200


def test_changes_need_a_token_and_ownership(http: httpx.Client) -> None:
    owner, auth = new_user_with_token(http)
    _, stranger = new_user_with_token(http)
    url = f"{USERS}/{owner['id']}"
    response = http.patch(url, json={"name": "x"})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_problem(http.patch(url, json={"name": "x"}, headers=stranger), 403)
    assert_problem(http.delete(url, headers=stranger), 403)
    assert http.get(url, headers=auth).json() == owner


def test_admin_may_change_and_delete_anyone(http: httpx.Client) -> None:
    user = register(http)
    admin = admin_headers(http)
    url = f"{USERS}/{user['id']}"
    assert http.patch(url, json={"is_active": False}, headers=admin).json()["is_active"] is False
    assert http.delete(url, headers=admin).status_code == 204
    assert_problem(http.delete(url, headers=admin), 404)


def test_email_change_to_a_taken_email_gets_409(http: httpx.Client) -> None:
    other = register(http)
    user, auth = new_user_with_token(http)
    response = http.patch(
        f"{USERS}/{user['id']}", json={"email": other["email"].upper()}, headers=auth
    )
    assert_problem(response, 409)


def test_delete_then_ids_are_not_reused(http: httpx.Client) -> None:
    user, auth = new_user_with_token(http)
    assert http.delete(f"{USERS}/{user['id']}", headers=auth).status_code == 204
    assert_problem(http.get(f"{USERS}/{user['id']}"), 404)
    # The deleted account's token no longer authenticates.
    assert_problem(http.get("/api/v1/auth/me", headers=auth), 401)
    assert register(http)["id"] > user["id"]
