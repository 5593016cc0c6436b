"""Import sessions: create, list, counters, images, and counters under concurrent uploads."""
from __future__ import annotations

import io
import threading

from factories import make_dicom_bytes
from helpers import AuthClient, basic


def _session(client, name="batch-1") -> dict:
    r = client.post("/api/import/sessions", json={"name": name})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _counters(client, session_id: int) -> tuple[int, int, int]:
    s = client.get(f"/api/import/sessions/{session_id}").get_json()
    return s["filesImported"], s["filesAdded"], s["filesRejected"]


def test_create_returns_the_session_with_zero_counters_and_the_user(client):
    r = client.post("/api/import/sessions",
                    json={"name": "batch-1", "filesImported": 7, "user": "mallory", "userId": 99})
    assert r.status_code == 201
    s = r.get_json()
    assert s["name"] == "batch-1" and s["user"] == "admin" and s["userId"] != 99
    assert (s["filesImported"], s["filesAdded"], s["filesRejected"]) == (0, 0, 0)
    assert s["created"] > 0 and s["lastUpdated"] == s["created"]
    assert client.get(f"/api/import/sessions/{s['id']}").get_json() == s
    assert client.get("/api/import/sessions").get_json() == [s]


def test_same_name_same_user_is_the_existing_session_other_user_400(client, user_client):
    first = _session(client)
    assert _session(client)["id"] == first["id"]
    r = user_client.post("/api/import/sessions", json={"name": "batch-1"})
    assert r.status_code == 400 and "another user" in r.get_json()["error"]
    assert len(client.get("/api/import/sessions").get_json()) == 1


def test_bad_bodies_are_400(client):
    for body in ({}, {"name": ""}, {"name": 3}, {"name": "x" * 181}, [1]):
        assert client.post("/api/import/sessions", json=body).status_code == 400, body


def test_counters_new_duplicate_rejected_and_the_sessions_images(client, services):
    s = _session(client)
    data = make_dicom_bytes()
    r = client.post(f"/api/import/sessions/{s['id']}/images", data=data, content_type="application/octet-stream")
    assert r.status_code == 201
    image = r.get_json()
    assert _counters(client, s["id"]) == (1, 1, 0)
    r = client.post(f"/api/import/sessions/{s['id']}/images", data={"file": (io.BytesIO(data), "a.dcm")},
                    content_type="multipart/form-data")
    assert r.status_code == 200 and r.get_json() == image
    assert _counters(client, s["id"]) == (2, 1, 0)
    r = client.post(f"/api/import/sessions/{s['id']}/images",
                    data={"file": (io.BytesIO(b"\xff\xd8\xff not dicom"), "photo.jpg")},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and r.get_json()["error"].startswith("photo.jpg: ")
    assert _counters(client, s["id"]) == (2, 1, 1)
    after = client.get(f"/api/import/sessions/{s['id']}").get_json()
    assert after["lastUpdated"] >= after["created"]
    # the image carries the session as its source
    with services.db.connection() as conn:
        rows = conn.all("SELECT source_type, source_name, source_id FROM series_sources")
    assert rows == [{"source_type": "import", "source_name": "batch-1", "source_id": s["id"]}]
    assert client.get(f"/api/import/sessions/{s['id']}/images").get_json() == [image]
    # an image deleted is no longer listed; the stored bytes are the uploaded ones
    assert client.get(f"/api/images/{image['id']}").data == data
    assert client.delete(f"/api/images/{image['id']}").status_code == 204
    assert client.get(f"/api/import/sessions/{s['id']}/images").get_json() == []


def test_unknown_session_is_404_and_nothing_is_stored(client, services):
    r = client.post("/api/import/sessions/999/images", data=make_dicom_bytes(),
                    content_type="application/octet-stream")
    assert r.status_code == 404
    assert client.get("/api/import/sessions/999").status_code == 404
    assert client.get("/api/import/sessions/999/images").status_code == 404
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM images") == 0


def test_delete_keeps_the_images_and_is_204_when_missing(client):
    s = _session(client)
    r = client.post(f"/api/import/sessions/{s['id']}/images", data=make_dicom_bytes(),
                    content_type="application/octet-stream")
    assert r.status_code == 201
    assert client.delete(f"/api/import/sessions/{s['id']}").status_code == 204
    assert client.get(f"/api/import/sessions/{s['id']}").status_code == 404
    assert client.get(f"/api/images/{r.get_json()['id']}").status_code == 200
    assert client.delete(f"/api/import/sessions/{s['id']}").status_code == 204


def test_another_users_session_is_403_for_a_user(client, user_client):
    s = _session(client)
    r = user_client.post(f"/api/import/sessions/{s['id']}/images", data=make_dicom_bytes(),
                         content_type="application/octet-stream")
    assert r.status_code == 403
    assert user_client.delete(f"/api/import/sessions/{s['id']}").status_code == 403
    assert _counters(client, s["id"]) == (0, 0, 0)


def test_counters_stay_exact_under_8_concurrent_uploads(app, client):
    s = _session(client)
    per_thread = 6
    # each thread: new images, a duplicate of its first, and a rejected file
    datasets = [[make_dicom_bytes(PatientID=f"P{t}") for _ in range(per_thread)] for t in range(8)]
    statuses: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        own = AuthClient(app.test_client(), basic("admin", "secret"))
        url = f"/api/import/sessions/{s['id']}/images"
        try:
            barrier.wait(10)
            bodies = datasets[t] + [datasets[t][0], b"not dicom at all"]
            for body in bodies:
                r = own.post(url, data=body, content_type="application/octet-stream")
                statuses.append(r.status_code)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors
    assert sorted(statuses) == sorted([201] * 8 * per_thread + [200] * 8 + [400] * 8)
    assert _counters(client, s["id"]) == (8 * per_thread + 8, 8 * per_thread, 8)
    assert len(client.get(f"/api/import/sessions/{s['id']}/images").get_json()) == 8 * per_thread
