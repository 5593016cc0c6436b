"""Export sets: POST /images/export -> id, GET /images/export?id= -> streamed zip."""
import io
import re
import zipfile

import pytest

from factories import make_dicom_bytes

ENTRY = re.compile(r"^(\d+)_(.*)/(\d+)_(.*)/(\d+)_(.*)_(.*)/(\d+)\.dcm$")


def _store(upload, **tags):
    data = make_dicom_bytes(**tags)
    r = upload(data)
    assert r.status_code == 201
    return r.get_json(), data


def _download(client, export_id):
    r = client.get("/api/images/export", query_string={"id": export_id})
    assert r.status_code == 200, r.get_data(as_text=True)
    return r, zipfile.ZipFile(io.BytesIO(r.data))


def test_export_set_downloads_as_zip_of_stored_bytes(client, upload, services):
    a, data_a = _store(upload)
    b, data_b = _store(upload, PatientName="Doe^Jane", PatientID="X/1\\2", StudyInstanceUID="1.2.3.9",
                       SeriesInstanceUID="1.2.3.9.1", StudyDate="20230505", SeriesDate="20230506",
                       Modality="MR")
    r = client.post("/api/images/export", json=[a["id"], b["id"], 98765])
    assert r.status_code == 200
    export_id = r.get_json()["value"]
    assert isinstance(export_id, int)

    response, archive = _download(client, export_id)
    assert response.mimetype in ("application/zip", "application/octet-stream")
    assert response.headers["Content-Disposition"] == "attachment; filename=slicebox-export.zip"
    assert archive.testzip() is None
    names = archive.namelist()
    assert len(names) == 2
    by_image = {int(ENTRY.match(n).group(8)): n for n in names}
    assert archive.read(by_image[a["id"]]) == data_a
    assert archive.read(by_image[b["id"]]) == data_b
    assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())

    with services.db.connection() as conn:
        row = conn.one("SELECT p.id AS pid, st.id AS stid, se.id AS seid FROM images i "
                       "JOIN series se ON se.id = i.series_id JOIN studies st ON st.id = se.study_id "
                       "JOIN patients p ON p.id = st.patient_id WHERE i.id = ?", (b["id"],))
    # slashes and backslashes in values become '-', so the folders are exactly three deep
    assert by_image[b["id"]] == (f"{row['pid']}_Doe^Jane-X-1-2/{row['stid']}_20230505/"
                                 f"{row['seid']}_20230506_MR/{b['id']}.dcm")


def test_empty_list_or_only_unknown_ids_is_201_without_set(client, services):
    for body in ([], [555, 556]):
        r = client.post("/api/images/export", json=body)
        assert r.status_code == 201
        assert r.data == b""
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM export_sets") == 0


@pytest.mark.parametrize("body", [{"ids": [1]}, ["1"], [1.5], "x"])
def test_bad_body_is_400(client, body):
    assert client.post("/api/images/export", json=body).status_code == 400


def test_unknown_set_is_404_and_missing_id_is_400(client):
    assert client.get("/api/images/export", query_string={"id": 4711}).status_code == 404
    assert client.get("/api/images/export").status_code == 400
    assert client.get("/api/images/export", query_string={"id": "abc"}).status_code == 400


def test_set_survives_a_restart(app_factory, upload, client):
    image, data = _store(upload)
    export_id = client.post("/api/images/export", json=[image["id"]]).get_json()["value"]
    from helpers import ADMIN, AuthClient

    second = AuthClient(app_factory().test_client(), ADMIN)
    _, archive = _download(second, export_id)
    assert [archive.read(n) for n in archive.namelist()] == [data]


def test_set_expires_after_ttl(client, upload, clock):
    image, _ = _store(upload)
    export_id = client.post("/api/images/export", json=[image["id"]]).get_json()["value"]
    now = clock.now_ms()
    ttl_ms = 12 * 3600 * 1000  # the default EXPORT_SET_TTL
    clock.set(now + ttl_ms - 60_000)
    assert client.get("/api/images/export", query_string={"id": export_id}).status_code == 200
    clock.set(now + ttl_ms + 1)
    assert client.get("/api/images/export", query_string={"id": export_id}).status_code == 404


def test_configured_ttl_is_used(app_factory):
    from helpers import ADMIN, AuthClient

    app = app_factory(EXPORT_SET_TTL=0)
    c = AuthClient(app.test_client(), ADMIN)
    image = c.post("/api/images", data=make_dicom_bytes(), content_type="application/octet-stream").get_json()
    export_id = c.post("/api/images/export", json=[image["id"]]).get_json()["value"]
    assert c.get("/api/images/export", query_string={"id": export_id}).status_code == 404


def test_expired_sets_are_purged_when_a_new_one_is_made(client, upload, services, clock):
    image, _ = _store(upload)
    client.post("/api/images/export", json=[image["id"]])
    clock.advance(13 * 3600)
    client.post("/api/images/export", json=[image["id"]])
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM export_sets") == 1


def test_image_deleted_after_set_creation_is_left_out(client, upload):
    a, data_a = _store(upload)
    b, _ = _store(upload)
    export_id = client.post("/api/images/export", json=[a["id"], b["id"]]).get_json()["value"]
    assert client.delete(f"/api/images/{b['id']}").status_code == 204
    _, archive = _download(client, export_id)
    assert [archive.read(n) for n in archive.namelist()] == [data_a]


def test_large_set_streams_in_many_chunks(client, upload):
    # 1 MiB images: the response arrives in several chunks, never as one buffer
    import numpy as np

    rng = np.random.default_rng(5)
    stored = {}
    for _ in range(3):
        pixels = rng.integers(0, 4096, size=(512, 1024), dtype=np.uint16)
        image, data = _store(upload, rows=512, columns=1024, pixels=pixels)
        stored[image["id"]] = data
    export_id = client.post("/api/images/export", json=list(stored)).get_json()["value"]
    r = client.get("/api/images/export", query_string={"id": export_id}, buffered=False)
    chunks = list(r.response)
    assert len(chunks) >= 3
    assert max(len(c) for c in chunks) < 2 * 1024 * 1024 + 4096
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    for name in archive.namelist():
        assert archive.read(name) == stored[int(ENTRY.match(name).group(8))]


def test_plain_user_may_export(user_client, upload):
    image, data = _store(upload)
    export_id = user_client.post("/api/images/export", json=[image["id"]]).get_json()["value"]
    _, archive = _download(user_client, export_id)
    assert [archive.read(n) for n in archive.namelist()] == [data]
