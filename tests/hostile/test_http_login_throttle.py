"""Repeated wrong passwords, per user name and per client address, are slowed down: bounded
waits answered 429 with Retry-After, never the superuser locked out for good.  Time moves
with the fake clock (no sleeping)."""
from __future__ import annotations

import pytest

from helpers import basic

UA = {"User-Agent": "pytest-throttle"}


def _client(app, ip: str):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = ip
    return c


def _login(c, user: str, password: str):
    return c.post("/api/users/login", json={"user": user, "pass": password}, headers=UA)


@pytest.fixture
def db_kind():
    """The throttle is kept in process memory: one database kind is enough (and each wrong
    password costs a real scrypt check)."""
    return "sqlite"


@pytest.fixture
def throttled_app(app_factory, clock):
    return app_factory(LOGIN_FREE_ATTEMPTS=3, LOGIN_MAX_DELAY=8)


def _add_user(app, name: str, password: str) -> None:
    r = _client(app, "127.0.0.1").post("/api/users", json={"user": name, "role": "USER", "password": password},
                                       headers=basic("admin", "secret"))
    assert r.status_code == 201


def test_wrong_passwords_for_one_user_get_doubling_bounded_waits(throttled_app, clock):
    _add_user(throttled_app, "bob", "pw-bob")
    # each guess from a new address: only the user name ties them together
    for n in range(3):
        assert _login(_client(throttled_app, f"10.0.0.{n}"), "bob", "wrong").status_code == 401
    r = _login(_client(throttled_app, "10.0.1.1"), "bob", "pw-bob")  # even the right password waits
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1" and r.get_json()["error"]
    r = _client(throttled_app, "10.0.1.1").get("/api/users", headers=basic("bob", "pw-bob"))
    assert r.status_code == 429  # basic auth is throttled alike
    clock.advance(1)
    assert _login(_client(throttled_app, "10.0.1.2"), "bob", "wrong").status_code == 401  # 4th failure
    assert _login(_client(throttled_app, "10.0.1.3"), "bob", "wrong").headers["Retry-After"] == "2"
    waits = []
    for _ in range(5):
        r = _login(_client(throttled_app, "10.0.1.4"), "bob", "wrong")
        assert r.status_code == 429
        waits.append(int(r.headers["Retry-After"]))
        clock.advance(waits[-1])
        assert _login(_client(throttled_app, "10.0.1.5"), "bob", "wrong").status_code == 401
    assert waits == [2, 4, 8, 8, 8]  # doubling, capped at LOGIN_MAX_DELAY
    clock.advance(8)
    assert _login(_client(throttled_app, "10.0.2.1"), "bob", "pw-bob").status_code == 201
    # success forgets the name's failures: the next wrong password is free again
    assert _login(_client(throttled_app, "10.0.2.2"), "bob", "wrong").status_code == 401
    assert _login(_client(throttled_app, "10.0.2.2"), "bob", "pw-bob").status_code == 201


def test_wrong_passwords_from_one_address_are_slowed_across_user_names(throttled_app, clock):
    _add_user(throttled_app, "carol", "pw-carol")
    attacker = _client(throttled_app, "192.0.2.7")
    for name in ("u1", "u2", "carol"):
        assert attacker.get("/api/users", headers=basic(name, "guess")).status_code == 401
    r = attacker.get("/api/users", headers=basic("carol", "pw-carol"))
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    # another address is not held back by this one's failures (carol has only one failure)
    assert _client(throttled_app, "198.51.100.1").get("/api/users", headers=basic("carol", "pw-carol")).status_code == 200
    clock.advance(1)
    assert attacker.get("/api/users", headers=basic("carol", "pw-carol")).status_code == 200
    # failures are forgotten 15 minutes after the last one
    for name in ("u1", "u2", "u3"):
        clock.advance(1)
        attacker.get("/api/users", headers=basic(name, "guess"))
    assert attacker.get("/api/users", headers=basic("carol", "pw-carol")).status_code == 429
    clock.advance(15 * 60 + 1)
    assert attacker.get("/api/users", headers=basic("u9", "guess")).status_code == 401
    assert attacker.get("/api/users", headers=basic("carol", "pw-carol")).status_code == 200


def test_the_superuser_is_never_locked_out_from_a_clean_address(throttled_app, clock):
    # an attacker hammers the superuser's name from many addresses, without pause
    for n in range(12):
        _login(_client(throttled_app, f"203.0.113.{n}"), "admin", "guess")
    attacker = _client(throttled_app, "203.0.113.1")
    assert _login(attacker, "admin", "secret").status_code == 429  # the guessing address waits
    # the real administrator, from an address that did not fail, gets in at once
    admin = _client(throttled_app, "10.9.9.9")
    assert admin.get("/api/users", headers=basic("admin", "secret")).status_code == 200
    assert _login(admin, "admin", "secret").status_code == 201
    # and from the guessing address too once its bounded wait is over
    clock.advance(8)
    assert _login(attacker, "admin", "secret").status_code == 201


def test_the_throttle_is_off_with_zero_free_attempts(app_factory, clock):
    app = app_factory(LOGIN_FREE_ATTEMPTS=0)
    c = _client(app, "10.1.1.1")
    for _ in range(8):
        assert _login(c, "admin", "wrong").status_code == 401
    assert _login(c, "admin", "secret").status_code == 201


def test_a_restart_forgets_the_failures(app_factory, clock):
    first = app_factory(LOGIN_FREE_ATTEMPTS=2, LOGIN_MAX_DELAY=60)
    c = _client(first, "10.2.2.2")
    for _ in range(5):
        _login(c, "admin", "wrong")
    assert _login(c, "admin", "secret").status_code == 429
    second = app_factory(LOGIN_FREE_ATTEMPTS=2, LOGIN_MAX_DELAY=60)  # same database, new process state
    assert _login(_client(second, "10.2.2.2"), "admin", "secret").status_code == 201
