"""Logs: listing with paging and filters, deleting one entry or all."""
from __future__ import annotations

import pytest

from slicebox.services import logs as logs_service


def _insert(services, created, entry_type, subject, message) -> int:
    with services.db.connection() as conn:
        return conn.scalar(
            "INSERT INTO log (created, entry_type, subject, message) VALUES (?, ?, ?, ?) RETURNING id",
            (created, entry_type, subject, message))


@pytest.fixture
def entries(services):
    """Five entries whose insertion order differs from their time order; the log emptied first."""
    with services.db.connection() as conn:
        conn.execute("DELETE FROM log")
    rows = [
        (3000, "INFO", "Storage", "third"),
        (1000, "WARN", "Box", "first"),
        (5000, "ERROR", "Storage", "fifth"),
        (2000, "INFO", "Box", "second"),
        (4000, "DEFAULT", "System", "fourth"),
    ]
    return {msg: _insert(services, *row[:3], msg) for row in rows for msg in [row[3]]}


def _messages(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [e["message"] for e in response.get_json()]


def test_list_newest_first_with_spec_fields(client, entries):
    r = client.get("/api/log")
    assert _messages(r) == ["fifth", "fourth", "third", "second", "first"]
    top = r.get_json()[0]
    assert top == {"id": entries["fifth"], "created": 5000, "entryType": "ERROR",
                   "subject": "Storage", "message": "fifth"}


def test_paging(client, entries):
    assert _messages(client.get("/api/log?startindex=1&count=2")) == ["fourth", "third"]
    assert _messages(client.get("/api/log?startindex=4&count=10")) == ["first"]
    assert _messages(client.get("/api/log?startindex=5")) == []
    for bad in ("startindex=-1", "count=abc", "count=-5"):
        r = client.get(f"/api/log?{bad}")
        assert r.status_code == 400 and r.get_json()["error"]


def test_default_count_is_20(client, services):
    for i in range(25):
        _insert(services, 10_000 + i, "INFO", "Many", f"m{i}")
    r = client.get("/api/log?subject=Many")
    assert _messages(r) == [f"m{i}" for i in range(24, 4, -1)]


def test_filter_by_subject_and_type(client, entries):
    assert _messages(client.get("/api/log?subject=Storage")) == ["fifth", "third"]
    assert _messages(client.get("/api/log?type=INFO")) == ["third", "second"]
    assert _messages(client.get("/api/log?subject=Box&type=INFO")) == ["second"]
    assert _messages(client.get("/api/log?subject=Nothing")) == []
    # the subject is matched exactly, as a value, never as SQL
    assert _messages(client.get("/api/log?subject=Stor")) == []
    assert _messages(client.get("/api/log", query_string={"subject": "x' OR '1'='1"})) == []


@pytest.mark.parametrize("bad", ["info", "FATAL", "INFO'--"])
def test_bad_type_is_400(client, entries, bad):
    r = client.get("/api/log", query_string={"type": bad})
    assert r.status_code == 400
    assert "DEFAULT" in r.get_json()["error"]


def test_user_can_read_the_log(user_client, entries):
    assert len(_messages(user_client.get("/api/log"))) == 5


def test_events_of_the_box_are_logged(client, services):
    with services.db.connection() as conn:
        conn.execute("DELETE FROM log")
    logs_service.warn(services, "Test", "something odd")
    r = client.get("/api/log?type=WARN")
    assert [(e["subject"], e["message"]) for e in r.get_json()] == [("Test", "something odd")]


def test_delete_one_entry(client, entries):
    assert client.delete(f"/api/log/{entries['third']}").status_code == 204
    assert _messages(client.get("/api/log")) == ["fifth", "fourth", "second", "first"]
    # unknown ids are ignored
    assert client.delete(f"/api/log/{entries['third']}").status_code == 204
    assert client.delete("/api/log/987654").status_code == 204
    assert len(_messages(client.get("/api/log"))) == 4


def test_delete_all(client, entries):
    assert client.delete("/api/log").status_code == 204
    assert _messages(client.get("/api/log")) == []
    assert client.delete("/api/log").status_code == 204


def test_user_cannot_delete_log_entries(user_client, client, entries):
    # the log is the box's audit trail: unlike Slicebox 2.0 only administrators may erase it
    r = user_client.delete(f"/api/log/{entries['first']}")
    assert r.status_code == 403 and r.get_json()["error"]
    assert user_client.delete("/api/log").status_code == 403
    assert len(_messages(client.get("/api/log"))) == 5


def test_log_needs_a_user(anon_client, entries):
    assert anon_client.get("/api/log").status_code == 401
    assert anon_client.delete("/api/log").status_code == 401
