"""The OpenAPI document says what the server does: strict types, errors under the media type
they are sent with, stable operation ids, examples that work."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    found: dict[str, Any] = (await client.get("/openapi.json")).json()
    return found


async def test_errors_are_documented_as_problem_json_only(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert set(response["content"]) == {"application/problem+json"}, (
                        path,
                        method,
                        status,
                    )
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_probes_document_what_they_send(document: dict[str, Any]) -> None:
    assert set(document["paths"]["/ready"]["get"]["responses"]) == {"200", "503"}
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(metrics) == {"text/plain"}


async def test_patch_fields_may_be_left_out_but_are_never_null(
    document: dict[str, Any], client: httpx.AsyncClient
) -> None:
    fields = document["components"]["schemas"]["UserUpdate"]["properties"]
    assert fields["is_active"] == {"title": "Is Active", "type": "boolean"}
    assert all("anyOf" not in field for field in fields.values())
    created = await client.post(
        "/api/v1/users",
        json={"email": "strict@example.com", "name": "S", "password": "password123"},
    )
    token = (
        await client.post(
            "/api/v1/auth/token", data={"username": "strict@example.com", "password": "password123"}
        )
    ).json()["access_token"]
    url = created.headers["location"]
    auth = {"Authorization": f"Bearer {token}"}
    for value in (0, 1, "false", None):  # the schema says boolean: so does the server
        response = await client.patch(url, json={"is_active": value}, headers=auth)
        assert response.status_code == 422, value
    replaced = await client.put(
        url, json={"email": "strict@example.com", "name": "S", "is_active": 0}, headers=auth
    )
    assert replaced.status_code == 422


async def test_operation_ids_are_tag_and_name_and_tags_are_described(
    document: dict[str, Any],
) -> None:
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert "users-create_user" in ids
    assert "scoring-score" in ids
    described = {tag["name"] for tag in document["tags"] if tag.get("description")}
    used = {tag for ops in document["paths"].values() for op in ops.values() for tag in op["tags"]}
    assert used <= described
    assert "WS /api/v1/ws/chat" in document["info"]["description"]


async def test_the_scoring_example_scores_something(
    document: dict[str, Any], client: httpx.AsyncClient
) -> None:
    example = document["components"]["schemas"]["ScoringRequest"]["examples"][0]
    result = (await client.post("/api/v1/scoring", json=example)).json()
    assert any(item["score"] != 0 for item in result["results"])


@pytest.mark.parametrize(
    "number", [1.7976931348623155e308, -2.0e304, 1e151], ids=["near-max", "huge-negative", "1e151"]
)
async def test_numbers_too_large_to_score_are_a_422_naming_the_field(
    client: httpx.AsyncClient, number: float
) -> None:
    body = {
        "records": [
            {"id": "a", "features": {"x": number, "y": 1}},
            {"id": "b", "features": {"x": 1, "y": number}},
        ],
        "weights": {"x": number, "y": 1},
    }
    response = await client.post("/api/v1/scoring", json=body)
    assert response.status_code == 422
    assert any(
        "features" in err["loc"] or "weights" in err["loc"] for err in response.json()["errors"]
    )
