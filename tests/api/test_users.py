"""Users: roles, the configured superuser, adding, listing and deleting users."""
from __future__ import annotations

import json

from helpers import ADMIN, AuthClient, basic


def _add(client, user, role="USER", password="pw"):
    return client.post("/api/users", json={"user": user, "role": role, "password": password})


def _hashes(services) -> list[str]:
    with services.db.connection() as conn:
        return [r["password_hash"] for r in conn.all("SELECT password_hash FROM users")]


def _assert_no_hash(response, services):
    text = response.get_data(as_text=True)
    assert "hashedPassword" not in text and "password_hash" not in text
    for h in _hashes(services):
        assert h not in text
        assert h.split("$")[-1] not in text


# -- the configured superuser -----------------------------------------------------
def test_superuser_from_config_exists_at_start(client):
    r = client.get("/api/users")
    assert r.status_code == 200
    assert r.get_json() == [{"id": r.get_json()[0]["id"], "user": "admin", "role": "SUPERUSER"}]


def test_superuser_cannot_be_deleted(client):
    admin_id = client.get("/api/users").get_json()[0]["id"]
    r = client.delete(f"/api/users/{admin_id}")
    assert r.status_code == 400
    assert "superuser" in r.get_json()["error"]
    assert [u["user"] for u in client.get("/api/users").get_json()] == ["admin"]
    assert client.get("/api/users/current").status_code == 200


def test_superuser_cannot_be_added_through_the_api(client):
    r = _add(client, "root", role="SUPERUSER")
    assert r.status_code == 400
    assert "superuser" in r.get_json()["error"].lower()
    assert [u["user"] for u in client.get("/api/users").get_json()] == ["admin"]


def test_changed_superuser_config_resets_the_superuser(app_factory):
    first = app_factory()
    c1 = AuthClient(first.test_client(), ADMIN)
    assert _add(c1, "bob", role="ADMINISTRATOR").status_code == 201

    second = app_factory(SUPERUSER="root", SUPERUSER_PASSWORD="new-secret")
    c2 = second.test_client()
    assert c2.get("/api/users", headers=ADMIN).status_code == 401
    r = c2.get("/api/users", headers=basic("root", "new-secret"))
    assert r.status_code == 200
    users = {u["user"]: u["role"] for u in r.get_json()}
    assert users == {"root": "SUPERUSER", "bob": "ADMINISTRATOR"}
    # the old superuser is gone for the first app too (same database)
    assert c1.get("/api/users").status_code == 401


def test_changed_superuser_password_only_resets_the_password(app_factory):
    app_factory()
    second = app_factory(SUPERUSER_PASSWORD="other")
    c2 = second.test_client()
    assert c2.get("/api/users", headers=ADMIN).status_code == 401
    r = c2.get("/api/users", headers=basic("admin", "other"))
    assert r.status_code == 200
    assert [(u["user"], u["role"]) for u in r.get_json()] == [("admin", "SUPERUSER")]
    before = r.get_json()
    # the same config again changes nothing
    third = app_factory(SUPERUSER_PASSWORD="other")
    r = third.test_client().get("/api/users", headers=basic("admin", "other"))
    assert r.status_code == 200 and r.get_json() == before


def test_superuser_config_naming_an_existing_user_promotes_it(app_factory):
    first = app_factory()
    c1 = AuthClient(first.test_client(), ADMIN)
    carol_id = _add(c1, "carol").get_json()["id"]
    second = app_factory(SUPERUSER="carol", SUPERUSER_PASSWORD="carol-root")
    r = second.test_client().get("/api/users", headers=basic("carol", "carol-root"))
    assert r.status_code == 200
    assert r.get_json() == [{"id": carol_id, "user": "carol", "role": "SUPERUSER"}]


# -- POST /users ----------------------------------------------------------------
def test_admin_adds_users_of_each_role(client, services):
    for name, role in (("u1", "USER"), ("a1", "ADMINISTRATOR")):
        r = _add(client, name, role=role, password=f"pw-{name}")
        assert r.status_code == 201
        body = r.get_json()
        assert set(body) == {"id", "user", "role"}
        assert (body["user"], body["role"]) == (name, role)
        _assert_no_hash(r, services)
    listed = {u["user"]: u["role"] for u in client.get("/api/users").get_json()}
    assert listed == {"admin": "SUPERUSER", "u1": "USER", "a1": "ADMINISTRATOR"}
    # the new users can authenticate with their passwords, and only with them
    anon = client.inner
    assert anon.get("/api/users/current", headers=basic("u1", "pw-u1")).get_json()["role"] == "USER"
    assert anon.get("/api/users", headers=basic("a1", "pw-a1")).status_code == 200
    assert anon.get("/api/users", headers=basic("a1", "pw-u1")).status_code == 401


def test_administrator_can_add_and_delete_users(app, client):
    _add(client, "boss", role="ADMINISTRATOR", password="boss-pw")
    boss = AuthClient(app.test_client(), basic("boss", "boss-pw"))
    r = _add(boss, "worker")
    assert r.status_code == 201
    assert boss.delete(f"/api/users/{r.get_json()['id']}").status_code == 204
    assert "worker" not in [u["user"] for u in client.get("/api/users").get_json()]


def test_user_cannot_add_users(user_client, client):
    r = _add(user_client, "mallory", role="ADMINISTRATOR")
    assert r.status_code == 403
    assert "ADMINISTRATOR" in r.get_json()["error"]
    assert "mallory" not in [u["user"] for u in client.get("/api/users").get_json()]


def test_duplicate_user_returns_the_existing_user(client):
    first = _add(client, "dup", role="USER", password="one")
    second = _add(client, "dup", role="ADMINISTRATOR", password="two")
    assert second.status_code == 201
    assert second.get_json() == first.get_json()
    assert [u["user"] for u in client.get("/api/users").get_json()].count("dup") == 1
    # the existing user is unchanged: old password, old role
    anon = client.inner
    assert anon.get("/api/users/current", headers=basic("dup", "one")).get_json()["role"] == "USER"
    assert anon.get("/api/users", headers=basic("dup", "two")).status_code == 401


def test_bad_new_user_bodies_are_400_and_add_nothing(client):
    bad = [
        {"user": "x", "role": "OWNER", "password": "pw"},
        {"user": "x", "role": "user", "password": "pw"},
        {"user": "x", "role": "USER"},
        {"user": "x", "password": "pw"},
        {"role": "USER", "password": "pw"},
        {"user": "   ", "role": "USER", "password": "pw"},
        {"user": "x", "role": "USER", "password": ""},
        {"user": 5, "role": "USER", "password": "pw"},
        {"user": "x" * 181, "role": "USER", "password": "pw"},
    ]
    for body in bad:
        r = client.post("/api/users", json=body)
        assert r.status_code == 400, body
        assert r.get_json()["error"]
    for raw in (b"", b"not json", b"[1, 2]"):
        r = client.post("/api/users", data=raw, content_type="application/json")
        assert r.status_code == 400, raw
    assert [u["user"] for u in client.get("/api/users").get_json()] == ["admin"]


def test_password_hash_never_in_any_response(app, client, services):
    responses = [
        _add(client, "hidden", password="pw-hidden"),
        _add(client, "hidden", password="pw-hidden"),
        client.get("/api/users"),
        client.get("/api/users/current"),
    ]
    c = app.test_client()
    responses.append(c.post("/api/users/login", json={"user": "hidden", "pass": "pw-hidden"}))
    responses.append(c.get("/api/users/current"))
    responses.append(c.get("/api/users"))
    responses.append(client.get("/api/log?count=1000"))
    for r in responses:
        assert r.status_code in (200, 201), r.get_data(as_text=True)
        _assert_no_hash(r, services)
        for value in r.headers.values():
            assert "scrypt" not in value and "pbkdf2" not in value


# -- GET /users -----------------------------------------------------------------
def test_list_users_paging(client):
    for i in range(5):
        assert _add(client, f"p{i}").status_code == 201
    everyone = client.get("/api/users?count=100").get_json()
    assert [u["user"] for u in everyone] == ["admin", "p0", "p1", "p2", "p3", "p4"]
    page = client.get("/api/users?startindex=2&count=3").get_json()
    assert page == everyone[2:5]
    assert client.get("/api/users?startindex=6").get_json() == []
    assert client.get("/api/users?count=0").get_json() == []
    for bad in ("startindex=-1", "count=x", "count=-2"):
        r = client.get(f"/api/users?{bad}")
        assert r.status_code == 400 and r.get_json()["error"]


def test_user_can_list_users(user_client):
    r = user_client.get("/api/users")
    assert r.status_code == 200
    assert {u["user"] for u in r.get_json()} == {"admin", "alice"}


# -- DELETE /users/{id} ----------------------------------------------------------
def test_delete_user(app, client):
    uid = _add(client, "gone", password="pw-gone").get_json()["id"]
    c = app.test_client()
    assert c.post("/api/users/login", json={"user": "gone", "pass": "pw-gone"}).status_code == 201
    assert c.get("/api/users").status_code == 200
    assert client.delete(f"/api/users/{uid}").status_code == 204
    assert "gone" not in [u["user"] for u in client.get("/api/users").get_json()]
    # neither the password nor a session of the deleted user works any more
    assert c.get("/api/users").status_code == 401
    assert app.test_client().get("/api/users", headers=basic("gone", "pw-gone")).status_code == 401


def test_delete_unknown_user_is_204(client):
    assert client.delete("/api/users/999999").status_code == 204


def test_user_cannot_delete_users(user_client, client):
    victim = _add(client, "victim").get_json()["id"]
    admin_id = client.get("/api/users/current").get_json()["id"]
    for uid in (victim, admin_id):
        r = user_client.delete(f"/api/users/{uid}")
        assert r.status_code == 403
        assert r.get_json()["error"]
    assert {"admin", "victim", "alice"} == {u["user"] for u in client.get("/api/users").get_json()}


def test_error_bodies_are_json(client):
    r = client.delete("/api/users/1", headers={"Authorization": "Basic " + "bm9wZTpub3Bl"})
    assert r.status_code == 401
    assert json.loads(r.get_data(as_text=True))["error"]
