"""Section 1 conventions against a real server: request ids, problems, docs, structured logs."""

from __future__ import annotations

import signal

import httpx

from tests.e2e.helpers import USERS, assert_problem
from tests.live_server import LiveServer


def test_index_names_what_to_try(http: httpx.Client) -> None:
    body = http.get("/").json()
    assert body["docs"] == "/docs"
    assert "register" in body["try"]


def test_docs_and_schema_are_served(http: httpx.Client) -> None:
    assert http.get("/docs").status_code == 200
    schema = http.get("/openapi.json").json()
    assert f"{USERS}/{{user_id}}" in schema["paths"]
    assert "/api/v1/auth/token" in schema["paths"]
    # Bodies validated in a worker are documented too.
    body_schema = schema["paths"]["/api/v1/scoring"]["post"]["requestBody"]["content"]
    assert body_schema["application/json"]["schema"]["$ref"].endswith("/ScoringRequest")
    assert "ScoringRecord" in schema["components"]["schemas"]
    # Error answers are documented as problem details.
    responses = schema["paths"][f"{USERS}/{{user_id}}"]["patch"]["responses"]
    assert "application/problem+json" in responses["412"]["content"]


def test_every_response_carries_a_request_id(http: httpx.Client) -> None:
    for response in (http.get("/"), http.get("/nope"), http.get(USERS), http.post(USERS, json={})):
        assert response.headers["x-request-id"]


def test_incoming_request_id_is_kept_and_bad_one_replaced(http: httpx.Client) -> None:
    assert http.get("/", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    replaced = http.get("/", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"]
    assert replaced != "bad id!"


def test_unknown_path_gets_404_problem(http: httpx.Client) -> None:
    body = assert_problem(http.get("/api/v1/nothing-here"), 404)
    assert body["title"] == "Not Found"


def test_log_lines_of_a_request_carry_its_id_as_json(
    http: httpx.Client, live_server: LiveServer
) -> None:
    http.post(
        USERS,
        json={"email": "logged@example.com", "name": "L", "password": "password123"},
        headers={"X-Request-ID": "log-check-1"},
    )
    mine = live_server.wait_for_events(lambda e: e.get("request_id") == "log-check-1", count=2)
    lines = live_server.log_events()
    events = {line["event"] for line in mine}
    assert {"user_created", "request"} <= events
    access = next(line for line in mine if line["event"] == "request")
    assert access["route"] == USERS
    assert access["status"] == 201
    assert access["method"] == "POST"
    assert isinstance(access["duration_ms"], float)
    assert access["client"] == "127.0.0.1"
    # uvicorn's own records are JSON through the same pipeline.
    assert any(line.get("logger") == "uvicorn.error" for line in lines)
    assert "password123" not in live_server.log_text()


def test_access_log_names_route_templates_never_raw_paths(
    http: httpx.Client, live_server: LiveServer
) -> None:
    for path, rid in (
        ("/docs", "tpl-docs"),
        (f"{USERS}/1", "tpl-user"),
        ("/no/such/7", "tpl-none"),
    ):
        http.get(path, headers={"X-Request-ID": rid})
    lines = live_server.wait_for_events(
        lambda e: e.get("event") == "request" and str(e.get("request_id")).startswith("tpl-"),
        count=3,
    )
    routes = {line["request_id"]: line["route"] for line in lines}
    assert routes["tpl-docs"] == "/docs"
    assert routes["tpl-user"] == f"{USERS}/{{user_id}}"
    assert routes["tpl-none"] == "<unmatched>"


def test_sigterm_stops_the_server_cleanly(live_server: LiveServer) -> None:
    # Runs last in this module: the fixture's server is stopped here. uvicorn re-raises the
    # signal after its graceful shutdown, so "clean" is -SIGTERM with the lifespan finished.
    assert live_server.stop() in (0, -signal.SIGTERM)
    log = live_server.log_text()
    assert "shutdown_complete" in log
    assert "Finished server process" in log
    assert "Traceback" not in log
