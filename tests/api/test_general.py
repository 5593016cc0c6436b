"""General: health, stop, sources, destinations; and restarting on an existing data dir."""
from __future__ import annotations

from helpers import ADMIN, AuthClient
from factories import make_dicom_bytes


def test_health_without_auth(anon_client):
    r = anon_client.get("/api/system/health")
    assert r.status_code == 200


def test_health_with_auth(client):
    assert client.get("/api/system/health").status_code == 200


def test_stop_by_admin_calls_the_stop_hook(client, services, clock):
    r = client.post("/api/system/stop")
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    assert "Shutting down" in r.get_data(as_text=True)
    # the shutdown happens after the response went out, one second later
    assert services.on_stop.calls == []
    clock.advance(0.9)
    assert services.on_stop.calls == []
    clock.advance(0.1)
    assert services.on_stop.calls == [True]
    entries = client.get("/api/log?subject=System").get_json()
    assert any("shutdown requested by admin" in e["message"] for e in entries)


def test_stop_by_user_is_403_and_does_not_stop(user_client, services, clock):
    r = user_client.post("/api/system/stop")
    assert r.status_code == 403
    assert r.get_json()["error"]
    clock.advance(1.3)  # longer than the stop delay
    assert services.on_stop.calls == []


def test_stop_without_auth_is_401(anon_client, services):
    assert anon_client.post("/api/system/stop").status_code == 401
    assert services.on_stop.calls == []


def _insert(services, sql, params):
    with services.db.connection() as conn:
        return conn.scalar(sql + " RETURNING id", params)


def test_sources_lists_users_and_the_other_sources(client, services):
    users = {u["user"]: u["id"] for u in client.get("/api/users").get_json()}
    bob = client.post("/api/users", json={"user": "bob", "role": "USER", "password": "pw"}).get_json()["id"]
    box = _insert(services, "INSERT INTO boxes (name, token, base_url, send_method) VALUES (?, ?, ?, ?)",
                  ("remote-box", "tok-1", "http://remote/api/transactions/tok-1", "PUSH"))
    scp = _insert(services, "INSERT INTO scps (name, ae_title, port) VALUES (?, ?, ?)", ("pacs-in", "SBX", 11112))
    watch = _insert(services, "INSERT INTO directory_watches (name, path) VALUES (?, ?)", ("inbox", "/tmp/inbox"))
    imp = _insert(services,
                  "INSERT INTO import_sessions (name, user_id, username, created, last_updated) "
                  "VALUES (?, ?, ?, ?, ?)", ("cd-import", bob, "bob", 1, 1))
    _insert(services, "INSERT INTO scus (name, ae_title, host, port) VALUES (?, ?, ?, ?)",
            ("pacs-out", "PACS", "127.0.0.1", 104))
    r = client.get("/api/sources")
    assert r.status_code == 200
    got = sorted((s["sourceType"], s["sourceName"], s["sourceId"]) for s in r.get_json())
    assert got == sorted([
        ("user", "admin", users["admin"]),
        ("user", "bob", bob),
        ("box", "remote-box", box),
        ("scp", "pacs-in", scp),
        ("directory", "inbox", watch),
        ("import", "cd-import", imp),
    ])
    assert all(set(s) == {"sourceType", "sourceName", "sourceId"} for s in r.get_json())


def test_destinations_lists_boxes_and_scus(client, services):
    assert client.get("/api/destinations").get_json() == []
    box = _insert(services, "INSERT INTO boxes (name, token, base_url, send_method) VALUES (?, ?, ?, ?)",
                  ("partner", "tok-2", "http://partner/api/transactions/tok-2", "POLL"))
    scu = _insert(services, "INSERT INTO scus (name, ae_title, host, port) VALUES (?, ?, ?, ?)",
                  ("pacs-out", "PACS", "127.0.0.1", 104))
    _insert(services, "INSERT INTO scps (name, ae_title, port) VALUES (?, ?, ?)", ("pacs-in", "SBX", 11113))
    r = client.get("/api/destinations")
    assert r.status_code == 200
    assert sorted(r.get_json(), key=lambda d: d["destinationType"]) == [
        {"destinationType": "box", "destinationName": "partner", "destinationId": box},
        {"destinationType": "scu", "destinationName": "pacs-out", "destinationId": scu},
    ]


def test_user_can_list_sources_and_destinations(user_client):
    assert {s["sourceName"] for s in user_client.get("/api/sources").get_json()} == {"admin", "alice"}
    assert user_client.get("/api/destinations").status_code == 200


def test_restart_on_existing_data_keeps_data_and_does_not_migrate_again(app_factory):
    first = app_factory()
    services = first.extensions["slicebox"]
    c1 = AuthClient(first.test_client(), ADMIN)
    data = make_dicom_bytes()
    r = c1.post("/api/images", data=data, content_type="application/octet-stream")
    assert r.status_code == 201
    image_id = r.get_json()["id"]
    assert c1.post("/api/users", json={"user": "kept", "role": "USER", "password": "pw"}).status_code == 201
    with services.db.connection() as conn:
        migrations = conn.all("SELECT version, name, applied FROM schema_migrations ORDER BY version")
    assert migrations and migrations[0]["version"] == 1
    services.close()

    second = app_factory()
    c2 = AuthClient(second.test_client(), ADMIN)
    r = c2.get(f"/api/images/{image_id}")
    assert r.status_code == 200
    assert r.data == data
    # storing the same image again is recognised as already stored
    again = c2.post("/api/images", data=data, content_type="application/octet-stream")
    assert again.status_code == 200 and again.get_json()["id"] == image_id
    assert "kept" in [u["user"] for u in c2.get("/api/users").get_json()]
    with second.extensions["slicebox"].db.connection() as conn:
        assert conn.all("SELECT version, name, applied FROM schema_migrations ORDER BY version") == migrations
