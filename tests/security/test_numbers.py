"""Numbers JSON can carry (I-JSON, RFC 7493): every body the app stores or sends again takes
integers within ±(2^53-1) and finite numbers only, and anything else is a 422 naming the member,
never a 500 (the review's N19: a 23-digit integer in an event's data was accepted, then failed
to serialise)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from tests.live_server import LiveServer

SAFE = 2**53 - 1
huge_integers = st.one_of(st.integers(min_value=SAFE + 1), st.integers(max_value=-SAFE - 1))
huge_literals = st.one_of(
    huge_integers.map(str), st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "-Infinity"])
)
keys = st.text(alphabet="abcdefgh", min_size=1, max_size=4)
# Where in a JSON document the number goes: at the top, in a list, in an object.
paths = st.lists(st.one_of(keys, st.just(0)), max_size=4)


def _nest(path: list[Any], literal: str) -> str:
    text = literal
    for step in reversed(path):
        text = f"[{text}]" if step == 0 else json.dumps({step: None})[:-5] + text + "}"
    return text


def _post(client: httpx.Client, path: str, body: str) -> httpx.Response:
    return client.post(path, content=body, headers={"Content-Type": "application/json"})


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(literal=huge_literals, path=paths)
def test_an_event_with_a_number_json_cannot_carry_is_refused_naming_it(
    live_server: LiveServer, literal: str, path: list[Any]
) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=10) as client:
        body = '{"topic": "numbers.test", "data": ' + _nest(path, literal) + "}"
        response = _post(client, "/api/v1/events", body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        where = ".".join(["data", *(str(step) for step in path)])
        assert where in response.text, response.text


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(literal=huge_literals)
def test_every_json_route_answers_huge_numbers_with_a_4xx(
    live_server: LiveServer, literal: str
) -> None:
    bodies = {
        "/api/v1/scoring": '{"records": [{"id": "a", "features": {"x": ' + literal + "}}],"
        ' "weights": {"x": 1}}',
        "/api/v1/scoring/jobs": '{"records": [{"id": "a", "features": {"x": 1}}],'
        ' "weights": {"x": 1}, "top_k": ' + literal + "}",
        "/api/v1/users": '{"email": "n@example.com", "name": ' + literal + ', "password": "x"}',
        "/api/v1/cpu-intensive": '{"samples": ' + literal + "}",
    }
    with httpx.Client(base_url=live_server.base_url, timeout=10) as client:
        for path, body in bodies.items():
            response = _post(client, path, body)
            assert response.status_code == 422, (path, body, response.text)


async def test_a_chat_frame_with_a_huge_number_gets_an_error_frame_and_stays_open(
    live_server: LiveServer,
) -> None:
    url = live_server.base_url.replace("http", "ws") + "/api/v1/ws/chat?room=n&name=ann"
    async with connect(url, open_timeout=10) as socket:
        for frame in (
            '{"type": "message", "text": 170101339276224327843840000}',
            '{"type": "message", "text": "hi", "extra": 1e400}',
        ):
            await socket.send(frame)
            answer = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert answer["type"] in ("error", "message"), answer
        await socket.send('{"type": "ping"}')
        assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "pong"
