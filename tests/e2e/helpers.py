"""Small client-side helpers shared by the end-to-end tests."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD

USERS = "/api/v1/users"
AUTH = "/api/v1/auth"
TOKEN = "/api/v1/auth/token"
_counter = itertools.count(1)


def unique_email(prefix: str = "user") -> str:
    """An email no other test in this server uses."""
    return f"{prefix}{next(_counter)}@example.com"


def register(
    http: httpx.Client, email: str | None = None, password: str = "password123", name: str = "Test"
) -> dict[str, Any]:
    """Create a user and return its body; fails the test if registration fails."""
    response = http.post(
        USERS, json={"email": email or unique_email(), "name": name, "password": password}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def login(http: httpx.Client, email: str, password: str) -> str:
    """The bearer token for these credentials."""
    response = http.post(TOKEN, data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


def admin_headers(http: httpx.Client) -> dict[str, str]:
    """Authorization for the admin created at start-up."""
    return bearer(login(http, ADMIN_EMAIL, ADMIN_PASSWORD))


def new_user_with_token(http: httpx.Client) -> tuple[dict[str, Any], dict[str, str]]:
    """Register a fresh user and log in as it."""
    email = unique_email()
    user = register(http, email)
    return user, bearer(login(http, email, "password123"))


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Check the RFC 9457 shape of an error answer and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    for field in ("type", "title", "detail", "instance", "request_id"):
        assert body.get(field), f"problem without {field}: {body}"
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["instance"] == response.request.url.path
    problem: dict[str, Any] = body
    return problem
