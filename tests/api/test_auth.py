"""Authentication: basic auth, the session cookie, its binding and timeout, public routes."""
from __future__ import annotations

import re

import pytest

from helpers import ADMIN, basic

from slicebox.clock import now_ms

PUBLIC_API_RULES = {"/api/system/health", "/api/users/login", "/api/users/current", "/api/openapi.json"}
UA = {"User-Agent": "test-browser/1.0"}


def _login(client, user="admin", password="secret", headers=UA):
    return client.post("/api/users/login", json={"user": user, "pass": password}, headers=headers)


def _sessions(services) -> list[dict]:
    with services.db.connection() as conn:
        return conn.all("SELECT id, user_id, token, ip, user_agent, updated FROM sessions ORDER BY id")


def _set_updated(services, value_ms: int) -> None:
    with services.db.connection() as conn:
        conn.execute("UPDATE sessions SET updated = ?", (value_ms,))


# -- basic auth ---------------------------------------------------------------------
def test_basic_auth_valid(anon_client):
    r = anon_client.get("/api/users", headers=ADMIN)
    assert r.status_code == 200


@pytest.mark.parametrize("headers", [
    basic("admin", "wrong"),
    basic("nobody", "secret"),
    basic("", ""),
    {"Authorization": "Basic !!!not-base64"},
    {"Authorization": "Bearer abc"},
    {},
], ids=["wrong-password", "unknown-user", "empty", "garbage", "bearer", "none"])
def test_bad_or_missing_credentials_are_401_with_json_error(anon_client, headers):
    r = anon_client.get("/api/users", headers=headers)
    assert r.status_code == 401
    assert r.is_json
    assert isinstance(r.get_json()["error"], str) and r.get_json()["error"]


def test_wrong_basic_auth_is_401_even_with_a_valid_cookie(app):
    c = app.test_client()
    assert _login(c).status_code == 201
    assert c.get("/api/users", headers=UA).status_code == 200
    assert c.get("/api/users", headers={**UA, **basic("admin", "wrong")}).status_code == 401


def test_bad_cookie_with_valid_basic_auth_is_200(app):
    c = app.test_client()
    c.set_cookie("slicebox-session", "forged", path="/api")
    assert c.get("/api/users", headers=UA).status_code == 401
    assert c.get("/api/users", headers={**UA, **ADMIN}).status_code == 200


# -- login ---------------------------------------------------------------------------
def test_login_sets_an_http_only_session_cookie(app, services):
    c = app.test_client()
    r = _login(c)
    assert r.status_code == 201
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("slicebox-session=")
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs
    assert "path=/api" in attrs
    token = re.match(r"slicebox-session=([^;]+)", cookie).group(1)
    assert len(token) >= 32
    # stored bound to this client, the agent not in clear text
    rows = _sessions(services)
    assert len(rows) == 1 and rows[0]["token"] == token
    assert rows[0]["ip"] == "127.0.0.1"
    assert rows[0]["user_agent"] != UA["User-Agent"]


def test_cookie_works_on_a_protected_route(app):
    c = app.test_client()
    _login(c)
    r = c.get("/api/users", headers=UA)
    assert r.status_code == 200
    assert [u["user"] for u in r.get_json()] == ["admin"]


def test_login_as_plain_user_gets_user_rights(app, client):
    client.post("/api/users", json={"user": "ulla", "role": "USER", "password": "pw-ulla"})
    c = app.test_client()
    assert _login(c, "ulla", "pw-ulla").status_code == 201
    assert c.get("/api/users/current", headers=UA).get_json()["user"] == "ulla"
    r = c.post("/api/users", json={"user": "x", "role": "USER", "password": "x"}, headers=UA)
    assert r.status_code == 403


@pytest.mark.parametrize("user,password", [("admin", "wrong"), ("ghost", "secret")])
def test_login_with_bad_credentials_is_401_without_cookie(app, services, user, password):
    c = app.test_client()
    r = _login(c, user, password)
    assert r.status_code == 401
    assert r.get_json()["error"]
    assert "Set-Cookie" not in r.headers
    assert _sessions(services) == []


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'{"user": "admin"}', b'{"user": 1, "pass": "x"}'])
def test_login_with_malformed_body_is_400(app, body):
    r = app.test_client().post("/api/users/login", data=body, content_type="application/json", headers=UA)
    assert r.status_code == 400
    assert r.get_json()["error"]


def test_login_again_from_same_client_reuses_the_session(app, services):
    c = app.test_client()
    first = _login(c).headers["Set-Cookie"]
    second = _login(c).headers["Set-Cookie"]
    assert first.split(";")[0] == second.split(";")[0]
    assert len(_sessions(services)) == 1
    # another client (other agent) gets its own session
    other = app.test_client()
    third = _login(other, headers={"User-Agent": "other-browser"}).headers["Set-Cookie"]
    assert third.split(";")[0] != first.split(";")[0]
    assert len(_sessions(services)) == 2


# -- binding to client IP and User-Agent ----------------------------------------------------
def test_cookie_with_a_different_user_agent_is_401(app):
    c = app.test_client()
    _login(c)
    assert c.get("/api/users", headers=UA).status_code == 200
    r = c.get("/api/users", headers={"User-Agent": "evil/2.0"})
    assert r.status_code == 401
    assert r.get_json()["error"]
    # the rightful client still works
    assert c.get("/api/users", headers=UA).status_code == 200


def test_cookie_without_user_agent_is_401(app):
    c = app.test_client()
    _login(c)
    assert c.get("/api/users", headers={"User-Agent": ""}).status_code == 401


def test_cookie_from_a_different_ip_is_401(app):
    c = app.test_client()
    _login(c)
    r = c.get("/api/users", headers=UA, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert r.status_code == 401
    assert c.get("/api/users", headers=UA, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200


def test_session_from_another_ip_is_bound_to_that_ip(app, services):
    c = app.test_client()
    r = c.post("/api/users/login", json={"user": "admin", "pass": "secret"}, headers=UA,
               environ_base={"REMOTE_ADDR": "10.0.0.5"})
    assert r.status_code == 201
    assert _sessions(services)[0]["ip"] == "10.0.0.5"
    assert c.get("/api/users", headers=UA, environ_base={"REMOTE_ADDR": "10.0.0.5"}).status_code == 200
    assert c.get("/api/users", headers=UA).status_code == 401


def test_login_without_user_agent_is_refused(app, services):
    r = app.test_client().post("/api/users/login", json={"user": "admin", "pass": "secret"},
                               headers={"User-Agent": ""})
    assert r.status_code == 400
    assert "User-Agent" in r.get_json()["error"]
    assert "Set-Cookie" not in r.headers
    assert _sessions(services) == []


# -- sliding timeout -----------------------------------------------------------------------
def test_session_expires_after_the_timeout(app, services):
    c = app.test_client()
    _login(c)
    _set_updated(services, now_ms() - 3600 * 1000 - 5000)
    r = c.get("/api/users", headers=UA)
    assert r.status_code == 401
    assert _sessions(services) == []  # an expired session is removed when seen


def test_use_refreshes_the_session(app, services):
    c = app.test_client()
    _login(c)
    # 50 minutes idle: still valid, and using it slides the window
    old = now_ms() - 50 * 60 * 1000
    _set_updated(services, old)
    before = now_ms()
    assert c.get("/api/users", headers=UA).status_code == 200
    assert _sessions(services)[0]["updated"] >= before
    # 50 more minutes would have expired the original window, but not the refreshed one
    assert c.get("/api/users", headers=UA).status_code == 200


def test_session_timeout_comes_from_config(app_factory):
    app = app_factory(SESSION_TIMEOUT=120)
    services = app.extensions["slicebox"]
    c = app.test_client()
    _login(c)
    _set_updated(services, now_ms() - 100 * 1000)  # within 120 s: valid, refreshed
    assert c.get("/api/users", headers=UA).status_code == 200
    assert _sessions(services)[0]["updated"] >= now_ms() - 5000
    _set_updated(services, now_ms() - 130 * 1000)  # beyond 120 s: expired
    assert c.get("/api/users", headers=UA).status_code == 401


def test_tiny_timeout_still_slides(app_factory, clock):
    app = app_factory(SESSION_TIMEOUT=1)
    c = app.test_client()
    _login(c)
    # used every 0.4 s for 2 s (twice the timeout): each use refreshes it
    for _ in range(5):
        clock.advance(0.4)
        assert c.get("/api/users", headers=UA).status_code == 200
    clock.advance(1.3)
    assert c.get("/api/users", headers=UA).status_code == 401


def test_login_after_expiry_issues_a_new_session(app, services):
    c = app.test_client()
    first = _login(c).headers["Set-Cookie"].split(";")[0]
    _set_updated(services, now_ms() - 2 * 3600 * 1000)
    second = _login(c).headers["Set-Cookie"].split(";")[0]
    assert second != first
    assert c.get("/api/users", headers=UA).status_code == 200


# -- current and logout ---------------------------------------------------------------------
def test_current_user_with_cookie(app):
    c = app.test_client()
    _login(c)
    r = c.get("/api/users/current", headers=UA)
    assert r.status_code == 200
    body = r.get_json()
    assert set(body) == {"id", "user", "role"}
    assert (body["user"], body["role"]) == ("admin", "SUPERUSER")


def test_current_user_without_a_session_is_404(app):
    c = app.test_client()
    r = c.get("/api/users/current", headers=UA)
    assert r.status_code == 404
    assert r.get_json()["error"]
    c.set_cookie("slicebox-session", "forged", path="/api")
    assert c.get("/api/users/current", headers=UA).status_code == 404
    _login(c)
    assert c.get("/api/users/current", headers={"User-Agent": "other"}).status_code == 404


def test_logout_ends_the_session(app, services):
    c = app.test_client()
    cookie = _login(c).headers["Set-Cookie"].split(";")[0]
    r = c.post("/api/users/logout", headers=UA)
    assert r.status_code == 201
    assert "slicebox-session=;" in r.headers["Set-Cookie"] or "Max-Age=0" in r.headers["Set-Cookie"]
    assert _sessions(services) == []
    # replaying the old cookie does not work
    replay = app.test_client()
    name, value = cookie.split("=", 1)
    replay.set_cookie(name, value, path="/api")
    assert replay.get("/api/users", headers=UA).status_code == 401
    assert replay.get("/api/users/current", headers=UA).status_code == 404
    assert c.get("/api/users", headers=UA).status_code == 401


def test_logout_needs_a_user(anon_client):
    assert anon_client.post("/api/users/logout").status_code == 401


def test_logout_by_one_user_does_not_end_another_users_session(app, client, services):
    client.post("/api/users", json={"user": "vic", "role": "USER", "password": "pw-vic"})
    c = app.test_client()
    cookie = _login(c, "vic", "pw-vic").headers["Set-Cookie"].split(";")[0]
    other = app.test_client()
    name, value = cookie.split("=", 1)
    other.set_cookie(name, value, path="/api")
    # an admin authenticating by basic auth while carrying vic's cookie
    assert other.post("/api/users/logout", headers={**UA, **ADMIN}).status_code == 201
    assert c.get("/api/users", headers=UA).status_code == 200


# -- every route needs a user ------------------------------------------------------------
def _fill(rule) -> str:
    path = rule.rule
    for arg in rule.arguments:
        path = re.sub(r"<(?:[^:<>]+:)?" + re.escape(arg) + r">", "1", path)
    return path


def test_every_api_route_needs_a_user(app):
    anon = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api"):
            continue
        view = app.view_functions[rule.endpoint]
        if rule.rule in PUBLIC_API_RULES:
            continue
        if getattr(view, "slicebox_public", False):
            # only the box-token routes may be public besides the three above
            assert rule.rule.startswith("/api/transactions/<"), f"{rule.rule} is public"
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = anon.open(_fill(rule), method=method)
            assert r.status_code == 401, f"{method} {rule.rule} answered {r.status_code}"
            assert r.get_json()["error"], f"{method} {rule.rule}"
            checked += 1
    assert checked >= 10


def test_public_routes_are_exactly_the_expected_ones(app):
    public = {r.rule for r in app.url_map.iter_rules()
              if r.rule.startswith("/api") and getattr(app.view_functions[r.endpoint], "slicebox_public", False)}
    assert PUBLIC_API_RULES <= public
    assert all(p in PUBLIC_API_RULES or p.startswith("/api/transactions/<") for p in public)


def test_public_routes_answer_without_a_user(anon_client):
    assert anon_client.get("/api/system/health").status_code == 200
    assert anon_client.get("/api/users/current").status_code == 404
    assert anon_client.post("/api/users/login", json={"user": "admin", "pass": "secret"},
                            headers=UA).status_code == 201


def test_unknown_api_path_is_404_not_401(anon_client):
    r = anon_client.get("/api/no/such/route")
    assert r.status_code == 404
    assert r.get_json()["error"]
