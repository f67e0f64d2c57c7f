"""The users routes' contract, in process (ASGI transport, lifespan running): status codes,
headers and what a rejected request leaves unchanged. The same app as the real server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from app.core.exceptions import StoreUnavailable
from app.memory.repository import MemoryRepository
from app.schemas.users import UserList
from app.stores.records import Record
from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD

USERS = "/api/v1/users"
TOKEN = "/api/v1/auth/token"


async def _register(client: httpx.AsyncClient, email: str) -> httpx.Response:
    response = await client.post(
        USERS, json={"email": email, "name": "Ada", "password": "password123"}
    )
    assert response.status_code == 201, response.text
    return response


async def _bearer(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post(TOKEN, data={"username": email, "password": "password123"})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_register_answers_201_with_location_etag_and_no_secret(
    client: httpx.AsyncClient,
) -> None:
    response = await _register(client, "ada@example.com")
    body = response.json()
    assert response.headers["location"] == f"{USERS}/{body['id']}"
    assert response.headers["etag"] == f'"{body["id"]}-1"'
    assert "password" not in response.text
    assert "hash" not in response.text


async def test_get_with_the_current_etag_is_304_and_head_has_no_body(
    client: httpx.AsyncClient,
) -> None:
    created = await _register(client, "etag@example.com")
    url, tag = created.headers["location"], created.headers["etag"]
    assert (await client.get(url, headers={"If-None-Match": tag})).status_code == 304
    head = await client.head(url)
    assert (head.status_code, head.content, head.headers["etag"]) == (200, b"", tag)
    options = await client.options(url)
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"


async def test_if_none_match_lists_and_weak_tags_hit_and_the_header_is_documented(
    client: httpx.AsyncClient,
) -> None:
    # The read takes the header from the request, not through `Header`: its answers and its
    # documentation must stay what `Header` gave.
    created = await _register(client, "listed@example.com")
    url, tag = created.headers["location"], created.headers["etag"]
    listed = await client.get(url, headers={"If-None-Match": f'"0-0", W/{tag}'})
    assert (listed.status_code, listed.headers["etag"], listed.content) == (304, tag, b"")
    assert (await client.head(url, headers={"If-None-Match": tag})).status_code == 304
    assert (await client.get(url, headers={"If-None-Match": ""})).status_code == 200
    assert (await client.get(url, headers={"If-None-Match": '"0-0"'})).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    for method in ("get", "head"):
        parameters = spec["paths"][f"{USERS}/{{user_id}}"][method]["parameters"]
        header = next(p for p in parameters if p["name"] == "If-None-Match")
        assert (header["in"], header["required"], header["schema"]["type"]) == (
            "header",
            False,
            "string",
        )


async def test_a_list_page_is_the_documented_shape_with_each_item_as_its_get_shows_it(
    client: httpx.AsyncClient,
) -> None:
    # The page is joined from kept item bodies, not serialised through UserList: it must be
    # exactly what UserList would have said, and stay so after a write.
    for name in ("b", "c", "d"):
        await _register(client, f"page-{name}@example.com")
    page = await client.get(USERS, params={"q": "", "sort": "-name", "skip": 1, "limit": 2})
    assert page.headers["content-type"] == "application/json"
    body = page.json()
    # Anonymous: public fields only, as every item's GET shows them.
    assert UserList.model_validate(body).model_dump(mode="json", exclude_unset=True) == body
    assert all("email" not in item and "role" not in item for item in body["items"])
    assert (body["skip"], body["limit"], len(body["items"])) == (1, 2, 2)
    assert body["total"] == (await client.get(USERS, params={"limit": 100})).json()["total"]
    for item in body["items"]:
        assert item == (await client.get(f"{USERS}/{item['id']}")).json()
        assert "password_hash" not in item


async def _admin(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_a_stale_if_match_is_412_and_changes_nothing(client: httpx.AsyncClient) -> None:
    created = await _register(client, "stale@example.com")
    url = created.headers["location"]
    auth = await _bearer(client, "stale@example.com")
    stale = {**auth, "If-Match": '"999-9"'}
    response = await client.patch(url, json={"name": "Changed"}, headers=stale)
    assert response.status_code == 412
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(url)).json()["name"] == "Ada"


async def test_a_taken_email_in_another_letter_case_is_409(client: httpx.AsyncClient) -> None:
    await _register(client, "case@example.com")
    response = await client.post(
        USERS, json={"email": "CASE@example.com", "name": "B", "password": "password123"}
    )
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/conflict"


async def test_a_rejected_password_is_never_echoed(client: httpx.AsyncClient) -> None:
    response = await client.post(
        USERS, json={"email": "short@example.com", "name": "S", "password": "secret7"}
    )
    assert response.status_code == 422
    assert "secret7" not in response.text
    assert response.json()["errors"][0]["loc"] == ["body", "password"]


async def test_an_idempotency_key_replays_the_first_answer(client: httpx.AsyncClient) -> None:
    body = {"email": "idem@example.com", "name": "I", "password": "password123"}
    headers = {"Idempotency-Key": "key-1"}
    first = await client.post(USERS, json=body, headers=headers)
    again = await client.post(USERS, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert (await client.get(USERS, params={"email": "idem@example.com"})).status_code == 403
    admin = await _admin(client)
    listed = (await client.get(USERS, params={"email": "idem@example.com"}, headers=admin)).json()
    assert listed["total"] == 1
    assert listed["items"][0]["email"] == "idem@example.com"


async def test_a_retry_after_a_lost_answer_replays_the_account_the_first_attempt_created(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store applies the first create and then fails to answer (a Redis timeout after the
    # write, a journal that could not be synced): the client hears 503 and retries.
    real_create = MemoryRepository.create
    lost: list[int] = []

    async def applied_then_lost(
        self: MemoryRepository, collection: str, data: Mapping[str, Any]
    ) -> Record:
        record = await real_create(self, collection, data)
        if str(data.get("email", "")).startswith("ghost") and not lost:
            lost.append(record["id"])
            raise StoreUnavailable("The store did not answer; retry shortly.")
        return record

    monkeypatch.setattr(MemoryRepository, "create", applied_then_lost)
    body = {"email": "ghost@example.com", "name": "G", "password": "password123"}
    headers = {"Idempotency-Key": "ghost-1"}
    first = await client.post(USERS, json=body, headers=headers)
    assert first.status_code == 503
    retry = await client.post(USERS, json=body, headers=headers)
    assert retry.status_code == 201, retry.text
    assert retry.json()["id"] == lost[0]
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.headers["location"] == f"{USERS}/{lost[0]}"
    assert retry.headers["etag"] == f'"{lost[0]}-1"'
    # Listeners hear of the account once, when the retry found it.
    events = (await client.get("/api/v1/events", params={"topic": "user.created"})).json()
    assert [e["data"]["id"] for e in events["items"]].count(lost[0]) == 1
    # And from now on the key replays as any settled key does.
    again = await client.post(USERS, json=body, headers=headers)
    assert (again.status_code, again.json()) == (201, retry.json())

    # Without the key, or with another key, or another client's same key, it is a taken email.
    assert (await client.post(USERS, json=body)).status_code == 409
    other_key = await client.post(USERS, json=body, headers={"Idempotency-Key": "ghost-2"})
    assert other_key.status_code == 409
    stranger = {"Authorization": (await _bearer(client, "ghost@example.com"))["Authorization"]}
    from_another_client = await client.post(USERS, json=body, headers={**headers, **stranger})
    assert from_another_client.status_code == 409
    # The stamp is never shown.
    admin = await _admin(client)
    shown = await client.get(f"{USERS}/{lost[0]}", headers=admin)
    assert "stamp" not in shown.text


async def test_only_the_owner_or_an_admin_may_change_an_account(
    client: httpx.AsyncClient,
) -> None:
    owner = await _register(client, "owner@example.com")
    await _register(client, "other@example.com")
    intruder = await _bearer(client, "other@example.com")
    url = owner.headers["location"]
    response = await client.delete(url, headers=intruder)
    assert response.status_code == 403
    assert (await client.get(url)).status_code == 200
    assert (
        await client.delete(url, headers=await _bearer(client, "owner@example.com"))
    ).status_code == 204
    assert (await client.get(url)).status_code == 404
