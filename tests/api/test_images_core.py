"""POST/GET/DELETE /images: one ingest path, dedupe, atomicity, errors."""
import io
import os
import threading

import pydicom
from factories import make_dataset, make_dicom_bytes


def test_upload_raw_body_stores_bytes_and_returns_201(client, services):
    data = make_dicom_bytes()
    r = client.post("/api/images", data=data, content_type="application/octet-stream")
    assert r.status_code == 201, r.get_json()
    image = r.get_json()
    assert image["sopInstanceUID"]["value"] == pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID
    got = client.get(f"/api/images/{image['id']}")
    assert got.status_code == 200
    assert got.data == data


def test_upload_multipart_file_field(client):
    data = make_dicom_bytes()
    r = client.post("/api/images", data={"file": (io.BytesIO(data), "x.dcm")},
                    content_type="multipart/form-data")
    assert r.status_code == 201
    assert client.get(f"/api/images/{r.get_json()['id']}").data == data


def test_same_sop_instance_uid_again_is_200_with_same_image(client, upload):
    data = make_dicom_bytes()
    first = upload(data)
    second = upload(data)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.get_json() == second.get_json()


def test_not_dicom_is_400_and_nothing_written(client, services):
    r = client.post("/api/images", data=b"hello world" * 100, content_type="application/octet-stream")
    assert r.status_code == 400
    assert "DICOM" in r.get_json()["error"]
    assert os.listdir(services.storage.temp_dir()) == []
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM images") == 0


def test_dicom_without_sop_instance_uid_is_400(client, services):
    ds = make_dataset()
    data = make_dicom_bytes(ds)
    ds2 = pydicom.dcmread(io.BytesIO(data))
    del ds2.SOPInstanceUID
    buf = io.BytesIO()
    ds2.save_as(buf)
    r = client.post("/api/images", data=buf.getvalue(), content_type="application/octet-stream")
    assert r.status_code == 400
    assert "SOPInstanceUID" in r.get_json()["error"]
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM patients") == 0


def test_truncated_dicom_is_400(client):
    data = make_dicom_bytes()
    r = client.post("/api/images", data=data[:200], content_type="application/octet-stream")
    assert r.status_code == 400


def test_unknown_image_is_404(client):
    assert client.get("/api/images/999").status_code == 404


def test_delete_last_image_removes_hierarchy(client, upload, services):
    image = upload().get_json()
    assert client.delete(f"/api/images/{image['id']}").status_code == 204
    assert client.get(f"/api/images/{image['id']}").status_code == 404
    with services.db.connection() as conn:
        for table in ("images", "series", "studies", "patients"):
            assert conn.scalar(f"SELECT COUNT(*) FROM {table}") == 0
    assert not services.storage.exists(image["id"])


def test_delete_keeps_parents_with_other_children(client, upload, services):
    a = upload().get_json()
    b = upload().get_json()
    assert client.delete(f"/api/images/{a['id']}").status_code == 204
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM series") == 1
    assert client.get(f"/api/images/{b['id']}").status_code == 200


def test_bulk_delete_ignores_unknown_ids(client, upload):
    a = upload().get_json()
    b = upload().get_json()
    r = client.post("/api/images/delete", json=[a["id"], 12345, b["id"]])
    assert r.status_code == 204
    assert client.get(f"/api/images/{a['id']}").status_code == 404
    assert client.get(f"/api/images/{b['id']}").status_code == 404


def test_bulk_delete_rejects_non_list(client):
    assert client.post("/api/images/delete", json={"ids": [1]}).status_code == 400
    assert client.post("/api/images/delete", data=b"not json",
                       content_type="application/json").status_code == 400


def test_concurrent_uploads_of_one_new_study_create_one_of_each(app, services):
    from helpers import ADMIN

    datas = [make_dicom_bytes() for _ in range(8)]
    results = []
    barrier = threading.Barrier(8)

    def send(data):
        c = app.test_client()
        barrier.wait()
        r = c.post("/api/images", data=data, headers=ADMIN, content_type="application/octet-stream")
        results.append((r.status_code, r.get_data(as_text=True)[:300]))

    threads = [threading.Thread(target=send, args=(d,)) for d in datas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [code for code, _ in results] == [201] * 8, results
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM patients") == 1
        assert conn.scalar("SELECT COUNT(*) FROM studies") == 1
        assert conn.scalar("SELECT COUNT(*) FROM series") == 1
        assert conn.scalar("SELECT COUNT(*) FROM images") == 8


def test_failed_store_leaves_no_file_and_no_row(client, services, monkeypatch):
    from slicebox.db import metadata

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(metadata, "upsert_series_source", boom)
    r = client.post("/api/images", data=make_dicom_bytes(), content_type="application/octet-stream")
    assert r.status_code == 500
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM images") == 0
    assert [n for n in os.listdir(services.storage.root) if n.isdigit()] == []
    assert os.listdir(services.storage.temp_dir()) == []


def test_dicom_cut_short_inside_pixel_data_is_400_and_nothing_stored(client, services):
    data = make_dicom_bytes(rows=64, columns=64)
    for cut in (len(data) - 1, len(data) - 100, len(data) - 64 * 64):
        r = client.post("/api/images", data=data[:cut], content_type="application/octet-stream")
        assert r.status_code == 400, cut
        assert "incomplete" in r.get_json()["error"]
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM images") == 0
    assert client.post("/api/images", data=data, content_type="application/octet-stream").status_code == 201


def test_garbage_after_the_last_element_is_400(client):
    data = make_dicom_bytes()
    r = client.post("/api/images", data=data + b"\x01\x02\x03" * 4, content_type="application/octet-stream")
    assert r.status_code == 400


def test_trailing_zero_padding_is_accepted(client):
    data = make_dicom_bytes()
    for pad in (b"\x00" * 3, b"\x00" * 16):
        fresh = make_dicom_bytes()
        r = client.post("/api/images", data=fresh + pad, content_type="application/octet-stream")
        assert r.status_code == 201, (pad, r.get_json())
    assert client.post("/api/images", data=data, content_type="application/octet-stream").status_code == 201
