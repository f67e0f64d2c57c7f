"""Traces from real server processes through the real OTLP exporter to a receiver that decodes
them: a users GET is one server span named by its route, a Redis-backed write has a client span
per Redis round trip under it, chain decisions are span events, logs and 5xx bodies name the
trace, a client's `traceparent` is continued only as the settings say, and a collector that is
down changes nothing for users."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.e2e.helpers import USERS, bearer, login, register, unique_email
from tests.live_server import LiveServer, free_port
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.redis_server import RedisServer

SERVER, CLIENT = 2, 3  # OTLP span kinds
ERROR = 2  # OTLP status code
# A client's W3C context: trace 0af7651916cd43dd8448eb211c80319c, parent b7ad6b7169203331, sampled.
TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE}-b7ad6b7169203331-01"


def _traced(receiver: OtlpReceiver, **env: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # export every 50 ms, so tests need not wait
        "OTEL_SERVICE_NAME": "resilient-api-under-test",
        **env,
    }


REQUEST_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    collector = OtlpReceiver()
    yield collector
    collector.close()


@pytest.fixture(scope="module")
def memory_server(receiver: OtlpReceiver, server_factory: ServerFactory) -> LiveServer:
    # The scoring worker starts with the server (see tests/e2e/test_faults.py). The timeout
    # is short for the timed-out request's sake, and long enough for a scoring request on a
    # busy machine (1 s once answered it 504).
    return server_factory(
        _traced(
            receiver,
            APP_REQUEST_TIMEOUT_SECONDS=str(REQUEST_TIMEOUT),
            APP_PROCESS_POOL_WARM_UP="true",
        )
    )


def _server_span(receiver: OtlpReceiver, name: str, status: int) -> ReceivedSpan:
    return receiver.wait_for(
        lambda s: (
            s.kind == SERVER
            and s.name == name
            and s.attributes.get("http.response.status_code") == status
        )
    )


def _access_line(server: LiveServer, request_id: str) -> dict[str, Any]:
    for _ in range(50):
        for line in server.log_events():
            if line.get("event") == "request" and line.get("request_id") == request_id:
                return line
        time.sleep(0.1)
    raise AssertionError(f"no access line for {request_id}")


def test_a_users_get_is_one_server_span_named_by_its_route(
    receiver: OtlpReceiver, memory_server: LiveServer
) -> None:
    with httpx.Client(base_url=memory_server.base_url) as http:
        user = register(http)
        found = http.get(f"{USERS}/{user['id']}", headers={"X-Request-ID": "traced-get"})
        assert found.status_code == 200
        missing = http.get(f"{USERS}/999999")
        assert missing.status_code == 404
        # The client's traceparent is not continued: it is no trusted proxy (the default).
        foreign = http.get(f"{USERS}/{user['id']}", headers={"traceparent": TRACEPARENT})
        assert foreign.status_code == 200

    span = _server_span(receiver, "GET /api/v1/users/{user_id}", 200)
    assert span.attributes["http.route"] == "/api/v1/users/{user_id}"
    assert span.attributes["http.request.method"] == "GET"
    assert str(user["id"]) not in span.name  # the template, never the raw path
    assert span.parent_span_id == ""  # a root: nothing to continue
    assert span.status_code != ERROR
    assert span.service["service.name"] == "resilient-api-under-test"
    # The access line of that request names the trace.
    assert _access_line(memory_server, "traced-get")["trace_id"] == span.trace_id

    not_found = _server_span(receiver, "GET /api/v1/users/{user_id}", 404)
    assert not_found.attributes["app.client_error"] is True
    assert not_found.status_code != ERROR  # the client's mistake, not the server's

    time.sleep(0.3)  # the third GET's batch
    assert not [s for s in receiver.spans if s.trace_id == TRACE]


def test_a_server_error_and_a_timeout_name_their_trace(
    receiver: OtlpReceiver, memory_server: LiveServer
) -> None:
    with httpx.Client(base_url=memory_server.base_url) as http:
        failed = http.get("/api/v1/demo/flaky", params={"failure_rate": 1})
        timed_out = http.get(
            "/api/v1/demo/slow", params={"delay": 60}, timeout=REQUEST_TIMEOUT + 30
        )
    assert failed.status_code == 500
    assert timed_out.status_code == 504
    span = _server_span(receiver, "GET /api/v1/demo/flaky", 500)
    assert failed.json()["trace_id"] == span.trace_id  # a bug report finds the trace
    assert span.status_code == ERROR
    slow = _server_span(receiver, "GET /api/v1/demo/slow", 504)
    assert timed_out.json()["trace_id"] == slow.trace_id
    assert slow.events["timed_out"]["timeout_seconds"] == REQUEST_TIMEOUT


def test_a_redis_write_continues_the_clients_trace_with_a_span_per_round_trip(
    receiver: OtlpReceiver, server_factory: ServerFactory, redis_server: RedisServer
) -> None:
    redis_server.flush()
    server = server_factory(
        _traced(
            receiver,
            APP_STORE="redis",
            APP_REDIS_URL=redis_server.url,
            APP_TRACE_CONTEXT_FROM="anyone",
        )
    )
    with httpx.Client(base_url=server.base_url) as http:
        email = unique_email("traced")
        user = register(http, email)
        token = login(http, email, "password123")
        changed = http.patch(
            f"{USERS}/{user['id']}",
            json={"name": "Traced"},
            headers={**bearer(token), "traceparent": TRACEPARENT},
        )
        assert changed.status_code == 200

    span = _server_span(receiver, "PATCH /api/v1/users/{user_id}", 200)
    assert span.trace_id == TRACE  # continued from the client's traceparent
    assert span.parent_span_id == "b7ad6b7169203331"
    receiver.wait_for(lambda s: s.trace_id == TRACE and s.kind == CLIENT)
    time.sleep(0.3)
    redis_calls = [s for s in receiver.trace(TRACE) if s.kind == CLIENT]
    assert redis_calls, "no Redis span in the write's trace"
    parents = {s.span_id: s.parent_span_id for s in receiver.trace(TRACE)}

    def under_the_request(span_id: str) -> bool:
        while span_id in parents:
            span_id = parents[span_id]
            if span_id == span.span_id:
                return True
        return False

    for call in redis_calls:
        assert call.name.startswith("redis ")
        assert call.attributes["db.system.name"] == "redis"
        # Each round trip under the request: directly, or under the event it publishes.
        assert under_the_request(call.span_id), call
    operations = {call.attributes["db.operation.name"] for call in redis_calls}
    assert len(operations) >= 2, operations  # the read of the record, then the commit


def test_a_scoring_task_is_traced_across_the_process_boundary(
    receiver: OtlpReceiver, memory_server: LiveServer
) -> None:
    records = [{"id": str(i), "features": {"speed": i, "cost": 10 - i}} for i in range(10)]
    with httpx.Client(base_url=memory_server.base_url) as http:
        scored = http.post(
            "/api/v1/scoring", json={"records": records, "weights": {"speed": 1, "cost": -1}}
        )
    assert scored.status_code == 200, scored.text

    request = _server_span(receiver, "POST /api/v1/scoring", 200)
    task = receiver.wait_for(
        lambda s: s.name.startswith("pool task ") and s.trace_id == request.trace_id
    )
    waited = receiver.wait_for(
        lambda s: s.name == "pool queue wait" and s.trace_id == request.trace_id
    )
    pool = next(s for s in receiver.trace(request.trace_id) if s.name.startswith("process_pool "))
    assert pool.parent_span_id == request.span_id  # in the web process, under the request
    # In the worker process: both continue the span the web process sent with the task.
    assert task.parent_span_id == pool.span_id
    assert waited.parent_span_id == pool.span_id
    assert task.service["service.instance.id"] != request.service["service.instance.id"]


def test_an_event_published_on_one_replica_is_delivered_on_another_in_a_linked_span(
    receiver: OtlpReceiver, server_factory: ServerFactory, module_redis: RedisServer
) -> None:
    env = _traced(receiver, APP_STORE="redis", APP_REDIS_URL=module_redis.url)
    publisher, other = server_factory(env), server_factory(env)
    with httpx.Client(base_url=publisher.base_url) as http:
        published = http.post("/api/v1/events", json={"topic": "traced.demo", "data": {"n": 1}})
    assert published.status_code == 202, published.text
    event_id = published.json()["id"]

    publish = receiver.wait_for(
        lambda s: (
            s.name == "publish events" and s.attributes.get("app.event.topic") == "traced.demo"
        )
    )
    request = _server_span(receiver, "POST /api/v1/events", 202)
    assert publish.trace_id == request.trace_id  # part of the request that published

    # Every replica's reader delivers the event, each in a trace of its own linked to the
    # publisher's span: the other replica's delivery too (its instance id names its pid).
    def delivered_on(server: LiveServer) -> ReceivedSpan:
        return receiver.wait_for(
            lambda s: (
                s.name == "deliver events"
                and s.attributes.get("messaging.message.id") == event_id
                and str(s.service["service.instance.id"]).endswith(f"-{server.process.pid}")
            )
        )

    linked = [delivered_on(publisher), delivered_on(other)]
    for delivery in linked:
        assert (publish.trace_id, publish.span_id) in delivery.links
        assert delivery.trace_id != publish.trace_id
        assert delivery.kind == 5  # consumer


def test_a_collector_that_is_down_changes_nothing_for_users(
    server_factory: ServerFactory,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    server = server_factory(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": nowhere, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    )
    with httpx.Client(base_url=server.base_url) as http:
        for _ in range(20):
            assert http.get("/api/v1/users", params={"limit": 1}).status_code == 200
        dropped = 0.0
        for _ in range(100):
            for line in http.get("/metrics").text.splitlines():
                if line.startswith("trace_spans_dropped_total "):
                    dropped = float(line.split()[1])
            if dropped > 0:
                break
            time.sleep(0.2)
        assert dropped > 0  # counted, not silent
        assert http.get("/ready").status_code == 200
    # It stops cleanly too: the last batch is given up on within the export timeout.
    assert server.stop() in (0, -15)
    errors = [e for e in server.log_events() if e.get("level") == "error"]
    assert errors == []
