"""Two chat members in one room: ann broadcasts, bob answers ann directly.

Run with the project's virtualenv (it has `websockets`) against a running server:
    .venv/bin/python docs/examples/chat.py            # API defaults to http://127.0.0.1:8000
"""

from __future__ import annotations

import asyncio
import json
import os

from websockets.asyncio.client import connect

API = os.environ.get("API", "http://127.0.0.1:8000")
CHAT = API.replace("http", "ws", 1) + "/api/v1/ws/chat?room=lobby&name="


async def main() -> None:
    async with connect(CHAT + "ann") as ann, connect(CHAT + "bob") as bob:
        print("ann got:", await ann.recv())  # bob's join notice
        await ann.send(json.dumps({"type": "message", "text": "hello, room"}))
        print("bob got:", await bob.recv())  # the broadcast (ann gets her own copy too)
        print("ann got:", await ann.recv())
        await bob.send(json.dumps({"type": "direct", "to": "ann", "text": "hi ann"}))
        print("ann got:", await ann.recv())  # only ann
        await bob.send(json.dumps({"type": "ping"}))
        print("bob got:", await bob.recv())


asyncio.run(main())
