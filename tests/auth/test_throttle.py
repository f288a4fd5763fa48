"""The sign-in throttle: backoff per client address and typed username, the same answer for known
and unknown usernames, the owner still able to sign in from elsewhere, and bad API tokens throttled
per client."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from app.auth.models import LoginThrottle
from app.core.db import utcnow
from tests.factories import PASSWORD, make_token, make_user
from tests.helpers import login


def from_address(app, address: str) -> TestClient:
    return TestClient(app, client=(address, 50000), raise_server_exceptions=False)


def end_every_wait(db) -> None:
    """As if the clock moved past every wait (the failures themselves are still remembered)."""
    with db.session() as session:
        session.execute(update(LoginThrottle).values(blocked_until=utcnow() - timedelta(seconds=1)))


def timed_login(client: TestClient, username: str, password: str) -> tuple[int, float]:
    started = time.perf_counter()
    status = login(client, username, password).status_code
    return status, time.perf_counter() - started


def test_known_and_unknown_usernames_get_the_same_answers_in_the_same_time(client, db, settings):
    make_user(db, "alice")
    known, unknown = [], []
    for _ in range(settings.LOGIN_FAILURES_PER_CLIENT_USERNAME + 2):
        known.append(timed_login(client, "alice", "wrong password"))
        unknown.append(timed_login(client, "nobody", "wrong password"))
    assert [s for s, _ in known] == [s for s, _ in unknown]
    assert [s for s, _ in known] == [401] * settings.LOGIN_FAILURES_PER_CLIENT_USERNAME + [429, 429]
    slow_known = statistics.median(t for s, t in known if s == 401)
    slow_unknown = statistics.median(t for s, t in unknown if s == 401)
    assert 1 / 3 < slow_known / slow_unknown < 3, (slow_known, slow_unknown)


def test_a_throttled_sign_in_says_when_to_retry_and_refuses_even_the_right_password(client, db, settings):
    make_user(db, "alice")
    for _ in range(settings.LOGIN_FAILURES_PER_CLIENT_USERNAME):
        assert login(client, "alice", "wrong password").status_code == 401
    throttled = login(client, "alice", PASSWORD)
    assert throttled.status_code == 429 and "Too many failed attempts" in throttled.text
    assert int(throttled.headers["retry-after"]) == settings.LOGIN_BACKOFF_S
    end_every_wait(db)
    assert login(client, "alice", PASSWORD).status_code == 303  # a wait, never a lock


def test_the_wait_doubles_with_each_further_failure(client, db, settings):
    make_user(db, "alice")
    for _ in range(settings.LOGIN_FAILURES_PER_CLIENT_USERNAME):
        login(client, "alice", "wrong password")
    waits = []
    for _ in range(3):
        waits.append(int(login(client, "alice", "wrong password").headers["retry-after"]))
        end_every_wait(db)
        assert login(client, "alice", "wrong password").status_code == 401
    assert waits == [settings.LOGIN_BACKOFF_S * 2**n for n in range(3)]


def test_an_attackers_failures_from_one_address_do_not_stop_the_owner_elsewhere(app, db, settings):
    make_user(db, "alice")
    attacker = from_address(app, "203.0.113.66")
    answers = {login(attacker, "alice", f"guess {n}").status_code for n in range(30)}
    assert answers == {401, 429}
    assert login(attacker, "alice", PASSWORD).status_code == 429
    owner = from_address(app, "198.51.100.7")
    assert login(owner, "alice", PASSWORD).status_code == 303
    assert owner.get("/api/v1/me").json()["username"] == "alice"


def test_one_address_trying_many_usernames_waits_too(app, db, settings):
    prober = from_address(app, "203.0.113.66")
    for n in range(settings.LOGIN_FAILURES_PER_CLIENT):
        assert login(prober, f"user{n}", "guess").status_code == 401
    assert login(prober, "someone-new", "guess").status_code == 429
    assert login(from_address(app, "198.51.100.7"), "someone-new", "guess").status_code == 401


def test_bad_bearer_tokens_from_one_client_get_429_after_the_allowance(app, client, db, settings):
    settings.TOKEN_FAILURES_PER_CLIENT = 4
    make_user(db, "alice")
    good = {"Authorization": f"Bearer {make_token(db, 'alice')}"}
    bad = {"Authorization": "Bearer pfl_deadbeef_not-a-real-token"}
    # Unsafe methods count too: their unit of work holds SQLite's write lock while the failure is stored.
    assert client.get("/api/v1/me", headers=bad).status_code == 401
    assert client.post("/api/v1/tokens", json={"name": "x"}, headers=bad).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer garbage"}).status_code == 401
    assert client.get("/api/v1/queue/next", headers=bad).status_code == 401  # the annotation path
    throttled = client.get("/api/v1/me", headers=bad)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert client.post("/api/v1/tokens", json={"name": "x"}, headers=bad).status_code == 429
    # An honest script behind the same address (a NAT, a proxy) is not locked out with the prober.
    assert client.get("/api/v1/me", headers=good).status_code == 200
    assert from_address(app, "198.51.100.7").get("/api/v1/me", headers=bad).status_code == 401
    end_every_wait(db)
    assert client.get("/api/v1/me", headers=bad).status_code == 401
