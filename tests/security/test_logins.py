"""Logins cannot be starved, guessed at speed, or used to buy a fresh rate-limit quota."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx

from tests.conftest import ServerFactory
from tests.e2e.helpers import bearer, login, new_user_with_token, register, unique_email
from tests.live_server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.redis_server import RedisServer
from tests.security.defaults import HELD_LOOP_SECONDS, SHIPPED_BOUNDS, breaker_states, live_loop_lag
from tests.security.test_memory import rss_mib

# Real bcrypt work (cost 10: tens of milliseconds), two hashing threads, a queue of 16.
SERVER_ENV = {**SHIPPED_BOUNDS, "APP_BCRYPT_ROUNDS": "10", "APP_HASH_WORKERS": "2"}
TOKEN = "/api/v1/auth/token"


async def test_blocking_demos_do_not_starve_logins(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as client:
        demos = [
            asyncio.create_task(client.get("/api/v1/blocking-demo", params={"delay": 3}))
            for _ in range(64)
        ]
        await asyncio.sleep(0.3)  # every thread of the shared pool is asleep now
        start = time.perf_counter()
        logins = await asyncio.gather(
            *(
                client.post(TOKEN, data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
                for _ in range(4)
            )
        )
        elapsed = time.perf_counter() - start
        for demo in demos:
            demo.cancel()
        await asyncio.gather(*demos, return_exceptions=True)
    assert [r.status_code for r in logins] == [200] * 4
    assert elapsed < 2.5, elapsed


async def test_a_login_flood_is_shed_not_queued_into_timeouts(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as client:
        flood = await asyncio.gather(
            *(
                client.post(TOKEN, data={"username": unique_email("flood"), "password": "guess-1"})
                for _ in range(90)
            )
        )
    codes = Counter(r.status_code for r in flood)
    assert set(codes) <= {401, 503}, codes
    assert codes[503] >= 30, codes
    assert all(r.headers["retry-after"] == "1" for r in flood if r.status_code == 503)
    assert breaker_states(live_server.base_url)["auth"] == "closed"
    assert live_loop_lag(live_server.base_url) < HELD_LOOP_SECONDS
    with httpx.Client(base_url=live_server.base_url) as http:
        assert login(http, ADMIN_EMAIL, ADMIN_PASSWORD)


def test_an_account_under_attack_backs_off(http: httpx.Client) -> None:
    email = unique_email("victim")
    register(http, email, password="the-right-one-1")
    wrong = [http.post(TOKEN, data={"username": email, "password": f"guess-{i}"}) for i in range(5)]
    assert [r.status_code for r in wrong] == [401] * 5
    waiting = http.post(TOKEN, data={"username": email, "password": "the-right-one-1"})
    assert waiting.status_code == 429
    delay = int(waiting.headers["retry-after"])
    assert 1 <= delay <= 2
    time.sleep(delay + 0.2)
    assert (
        http.post(TOKEN, data={"username": email, "password": "the-right-one-1"}).status_code == 200
    )


def test_someone_elses_failures_never_refuse_the_owners_right_password(
    live_server: LiveServer, http: httpx.Client
) -> None:
    # The review's N5: one wrong password each time the back-off ended kept the victim's right
    # password answered 429. Now only the failing address backs off.
    email = unique_email("owner")
    register(http, email, password="the-right-one-1")
    attacker = httpx.Client(
        base_url=live_server.base_url,
        transport=httpx.HTTPTransport(local_address="127.0.0.2"),
        timeout=10,
    )
    with attacker:
        for i in range(8):
            attacker.post(TOKEN, data={"username": email, "password": f"guess-{i}"})
        assert attacker.post(TOKEN, data={"username": email, "password": "x"}).status_code == 429
    owner = http.post(TOKEN, data={"username": email, "password": "the-right-one-1"})
    assert owner.status_code == 200


def test_long_usernames_are_refused_before_they_are_remembered(
    live_server: LiveServer, http: httpx.Client
) -> None:
    # The review's N6: 95 wrong logins with 1 MB usernames kept 183 MB in the throttle.
    pid = live_server.process.pid
    http.post(TOKEN, data={"username": "w" * 1000, "password": "warm-up"})
    baseline = rss_mib(pid)
    for i in range(95):
        name = f"{i:03d}" + "u" * 1_000_000
        response = http.post(TOKEN, data={"username": name, "password": "wrong-guess"})
        assert response.status_code == 401
    grown = rss_mib(pid) - baseline
    print(f"RSS grew {grown:.1f} MiB after 95 logins with 1 MB usernames")
    assert grown < 40
    assert rss_mib(pid) < 300


def test_one_address_gets_ten_tries_a_minute_at_one_account(http: httpx.Client) -> None:
    email = unique_email("guarded")
    register(http, email, password="the-right-one-1")
    codes = []
    for i in range(11):
        # Correct every other time, so the account's back-off never starts: the address limit
        # is what stops the eleventh.
        password = "the-right-one-1" if i % 2 else "wrong-password"
        codes.append(http.post(TOKEN, data={"username": email, "password": password}).status_code)
    assert codes[:10].count(429) == 0
    assert codes[10] == 429


def test_a_token_buys_no_fresh_quota_on_open_routes(server_factory: ServerFactory) -> None:
    server = server_factory(
        {**SERVER_ENV, "APP_BCRYPT_ROUNDS": "4", "APP_RATE_LIMIT_REQUESTS": "20"}
    )
    with httpx.Client(base_url=server.base_url) as http:
        tokens = []
        for _ in range(3):  # six requests: three registrations, three logins
            email = unique_email("throwaway")
            register(http, email)
            tokens.append(login(http, email, "password123"))
        codes = Counter(
            http.get("/api/v1/users", headers=bearer(tokens[i % 3])).status_code for i in range(30)
        )
    assert codes[200] <= 15, codes  # 14 left of the address's 20, maybe one trickled back
    assert codes[429] >= 15, codes


def test_current_password_guesses_count_against_the_login_throttle(http: httpx.Client) -> None:
    # The review's N10: PATCH's current_password checked 40 guesses with no 429.
    user, auth = new_user_with_token(http)
    url = f"/api/v1/users/{user['id']}"
    codes = [
        http.patch(
            url, json={"password": "new-password-1", "current_password": f"guess-{i}"}, headers=auth
        ).status_code
        for i in range(12)
    ]
    assert codes[:5] == [403] * 5
    assert 429 in codes


def test_with_redis_every_replica_shares_the_login_limits(
    server_factory: ServerFactory, redis_server: RedisServer
) -> None:
    # The review's N11: the login limits were per process, so N replicas gave N times the
    # guesses. With Redis they protect the account on every replica at once.
    redis_server.flush()
    env = {**SHIPPED_BOUNDS, "APP_STORE": "redis", "APP_REDIS_URL": redis_server.url}
    replicas = [server_factory(env) for _ in range(2)]
    clients = [httpx.Client(base_url=server.base_url, timeout=10) for server in replicas]
    try:
        email = unique_email("shared")
        register(clients[0], email, password="the-right-one-1")
        for i in range(5):  # the back-off starts after five failures, wherever they happen
            guess = clients[i % 2].post(TOKEN, data={"username": email, "password": f"g-{i}"})
            assert guess.status_code == 401
        for client in clients:
            waiting = client.post(TOKEN, data={"username": email, "password": "the-right-one-1"})
            assert waiting.status_code == 429
        # Ten attempts a minute per address and account, counted across replicas too.
        other = unique_email("counted")
        register(clients[0], other, password="the-right-one-1")
        codes = [
            clients[i % 2]
            .post(
                TOKEN,
                data={"username": other, "password": "the-right-one-1" if i % 2 else "wrong-1"},
            )
            .status_code
            for i in range(11)
        ]
        assert codes[:10].count(429) == 0
        assert codes[10] == 429
    finally:
        for client in clients:
            client.close()
