"""S3 storage against a real S3-compatible server process (moto's standalone server).

What a user sees: uploads answer as with a folder, the object lands in the
bucket under ``<prefix>/<image id>``, downloads and renderings stream from it,
deletes remove it; a failing object store is a 503 that names it, with nothing
half-stored (no image row, no object, no open multipart upload).
"""
from __future__ import annotations

import io
import zipfile

import pytest
from bigdicom import sha256_of_file, write_big_dicom
from factories import make_dicom_bytes
from helpers import ADMIN
from s3server import FaultyProxy, all_keys, box_config


@pytest.fixture
def s3_app(app_factory, moto_server, bucket):
    return app_factory(**box_config(moto_server.url, bucket))


@pytest.fixture
def s3_client(s3_app):
    from helpers import AuthClient

    return AuthClient(s3_app.test_client(), ADMIN)


def image_count(app) -> int:
    with app.extensions["slicebox"].db.connection() as conn:
        return conn.scalar("SELECT COUNT(*) FROM images")


def test_upload_download_delete_through_the_bucket(s3_app, s3_client, moto_server, bucket):
    s3 = moto_server.client()
    data = make_dicom_bytes(PatientName="S3^Patient", rows=16, columns=16)
    r = s3_client.post("/api/images", data=data, content_type="application/octet-stream")
    assert r.status_code == 201, r.get_data(as_text=True)
    image_id = r.get_json()["id"]
    assert all_keys(s3, bucket) == [f"images/{image_id}"]
    assert s3.get_object(Bucket=bucket, Key=f"images/{image_id}")["Body"].read() == data

    # the same image again: 200, and no second object
    again = s3_client.post("/api/images", data=data, content_type="application/octet-stream")
    assert again.status_code == 200 and again.get_json()["id"] == image_id
    assert all_keys(s3, bucket) == [f"images/{image_id}"]

    got = s3_client.get(f"/api/images/{image_id}")
    assert got.status_code == 200 and got.data == data
    assert int(got.headers["Content-Length"]) == len(data)
    png = s3_client.get(f"/api/images/{image_id}/png")
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"
    attrs = s3_client.get(f"/api/images/{image_id}/attributes")
    assert attrs.status_code == 200
    export = s3_client.post("/api/images/export", json=[image_id]).get_json()["value"]
    archive = s3_client.get(f"/api/images/export?id={export}")
    with zipfile.ZipFile(io.BytesIO(archive.data)) as zf:
        assert [zf.read(n) for n in zf.namelist()] == [data]

    assert s3_client.delete(f"/api/images/{image_id}").status_code == 204
    assert all_keys(s3, bucket) == []
    assert s3_client.get(f"/api/images/{image_id}").status_code == 404


def test_modification_replaces_the_object(s3_client, moto_server, bucket):
    s3 = moto_server.client()
    image_id = s3_client.post("/api/images", data=make_dicom_bytes(PatientName="Mod^Me"),
                              content_type="application/octet-stream").get_json()["id"]
    r = s3_client.put(f"/api/images/{image_id}/modify",
                      json=[{"tagPath": {"tag": 0x00100010}, "value": "Mod^Done"}])
    assert r.status_code == 201, r.get_data(as_text=True)
    new_id = r.get_json()["id"]
    assert all_keys(s3, bucket) == [f"images/{new_id}"]
    assert b"Mod^Done" in s3.get_object(Bucket=bucket, Key=f"images/{new_id}")["Body"].read()


def test_failed_transaction_removes_the_object_again(s3_app, s3_client, moto_server, bucket):
    """A modification whose result is another stored image is refused (409) after the put: the object goes."""
    s3 = moto_server.client()
    first = make_dicom_bytes(PatientName="Twin^A", SOPInstanceUID="1.2.3.4.5.1")
    second = make_dicom_bytes(PatientName="Twin^A", SOPInstanceUID="1.2.3.4.5.2")
    id1 = s3_client.post("/api/images", data=first, content_type="application/octet-stream").get_json()["id"]
    id2 = s3_client.post("/api/images", data=second, content_type="application/octet-stream").get_json()["id"]
    r = s3_client.put(f"/api/images/{id2}/modify",
                      json=[{"tagPath": {"tag": 0x00080018}, "value": "1.2.3.4.5.1"}])
    assert r.status_code == 409, r.get_data(as_text=True)
    assert all_keys(s3, bucket) == sorted([f"images/{id1}", f"images/{id2}"])
    assert s3_client.get(f"/api/images/{id2}").data == second
    assert image_count(s3_app) == 2


@pytest.mark.slow
@pytest.mark.parametrize("db_kind", ["postgres"], indirect=True)  # the production pairing; storage is the subject
def test_200_mb_file_goes_up_in_parts_and_streams_back(s3_app, s3_client, moto_server, bucket, tmp_path):
    s3 = moto_server.client()
    size = 200 * 1024 * 1024
    path = write_big_dicom(str(tmp_path / "big.dcm"), size, PatientName="Big^S3")
    with open(path, "rb") as fh:
        r = s3_client.post("/api/images", input_stream=fh, content_length=size,
                           content_type="application/octet-stream")
    assert r.status_code == 201, r.get_data(as_text=True)
    image_id = r.get_json()["id"]
    head = s3.head_object(Bucket=bucket, Key=f"images/{image_id}")
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith("-13")  # a multipart upload: 13 parts of 16 MiB
    got = s3_client.get(f"/api/images/{image_id}", buffered=False)
    assert got.status_code == 200 and int(got.headers["Content-Length"]) == size
    import hashlib

    digest, total = hashlib.sha256(), 0
    for chunk in got.response:
        assert len(chunk) <= 1 << 20  # streamed in chunks, never whole
        digest.update(chunk)
        total += len(chunk)
    got.close()
    assert total == size and digest.hexdigest() == sha256_of_file(path)


@pytest.fixture
def faulty(moto_server):
    proxy = FaultyProxy(moto_server.port)
    yield proxy
    proxy.close()


def _nothing_half_stored(app, s3, bucket):
    assert image_count(app) == 0
    assert all_keys(s3, bucket) == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)  # storage is the subject
@pytest.mark.parametrize("status,code", [(503, "SlowDown"), (400, "BadDigest")])
def test_object_store_failing_mid_multipart_upload(app_factory, moto_server, bucket, faulty, tmp_path,
                                                   status, code):
    """Part 3 of a 40 MB upload (16 MiB parts) fails every time: 503 naming the store, nothing left."""
    from helpers import AuthClient

    app = app_factory(**box_config(faulty.url, bucket))
    client = AuthClient(app.test_client(), ADMIN)
    faulty.rule = lambda method, path, headers: (
        (status, code) if method == "PUT" and "partNumber=3&" in path + "&" else None)
    size = 40 * 1024 * 1024
    path = write_big_dicom(str(tmp_path / "mid.dcm"), size, PatientName="Fails^Mid")
    with open(path, "rb") as fh:
        r = client.post("/api/images", input_stream=fh, content_length=size,
                        content_type="application/octet-stream")
    assert r.status_code == 503, r.get_data(as_text=True)
    assert "object store" in r.get_json()["error"]
    assert any(s == status for _, _, s in faulty.seen)
    assert any(m == "POST" and "uploads" in p for m, p, _ in faulty.seen)  # it was a multipart upload
    _nothing_half_stored(app, moto_server.client(), bucket)

    # the store recovers: the same upload is stored normally
    faulty.rule = lambda method, path, headers: None
    with open(path, "rb") as fh:
        r = client.post("/api/images", input_stream=fh, content_length=size,
                        content_type="application/octet-stream")
    assert r.status_code == 201, r.get_data(as_text=True)
    assert image_count(app) == 1


def test_object_store_refusing_a_small_put(app_factory, moto_server, bucket, faulty):
    from helpers import AuthClient

    app = app_factory(**box_config(faulty.url, bucket))
    client = AuthClient(app.test_client(), ADMIN)
    faulty.rule = lambda method, path, headers: (503, "ServiceUnavailable") if method == "PUT" else None
    r = client.post("/api/images", data=make_dicom_bytes(), content_type="application/octet-stream")
    assert r.status_code == 503 and "object store" in r.get_json()["error"]
    _nothing_half_stored(app, moto_server.client(), bucket)
