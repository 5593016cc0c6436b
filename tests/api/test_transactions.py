"""Token routes a remote box uses, driven in-process: auth by token, bodies, bookkeeping."""
import json
import os
import zlib

import pytest
from factories import make_dicom_bytes


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.fixture
def poll_box(client):
    r = client.post("/api/boxes/createconnection", json={"name": "peer"})
    assert r.status_code == 201
    return r.get_json()


def _image_url(box, tx=7, seq=1, total=2):
    return f"/api/transactions/{box['token']}/image?transactionid={tx}&sequencenumber={seq}&totalimagecount={total}"


def test_unknown_token_is_401(anon_client):
    r = anon_client.get("/api/transactions/00000000-0000-0000-0000-000000000000/outgoing/poll")
    assert r.status_code == 401


def test_push_counts_each_sequence_number_once(anon_client, client, poll_box, services):
    data = make_dicom_bytes()
    for _ in range(2):  # a resend after a crash
        r = anon_client.post(_image_url(poll_box), data=deflate(data), content_type="application/octet-stream")
        assert r.status_code == 204, r.get_json()
    incoming = client.get("/api/boxes/incoming").get_json()
    assert incoming[0]["receivedImageCount"] == 1 and incoming[0]["addedImageCount"] == 1
    assert incoming[0]["status"] == "PROCESSING"
    r = anon_client.post(_image_url(poll_box, seq=2), data=deflate(make_dicom_bytes()),
                         content_type="application/octet-stream")
    assert r.status_code == 204
    incoming = client.get("/api/boxes/incoming").get_json()
    assert incoming[0]["status"] == "FINISHED" and incoming[0]["receivedImageCount"] == 2
    status = anon_client.get(f"/api/transactions/{poll_box['token']}/status?transactionid=7")
    assert status.get_data(as_text=True) == "FINISHED"


def test_truncated_transfer_is_refused_and_nothing_stored(anon_client, poll_box, services):
    body = deflate(make_dicom_bytes(rows=64, columns=64))
    r = anon_client.post(_image_url(poll_box), data=body[: len(body) // 2], content_type="application/octet-stream")
    assert r.status_code == 400
    assert "incomplete" in r.get_json()["error"]
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM images") == 0
    assert os.listdir(services.storage.temp_dir()) == []


def test_body_that_is_not_deflate_is_400(anon_client, poll_box):
    r = anon_client.post(_image_url(poll_box), data=b"\xff" * 100, content_type="application/octet-stream")
    assert r.status_code == 400


def test_status_put_accepts_json_string_and_rejects_unknown(anon_client, client, poll_box):
    anon_client.post(_image_url(poll_box, total=5), data=deflate(make_dicom_bytes()),
                     content_type="application/octet-stream")
    url = f"/api/transactions/{poll_box['token']}/status?transactionid=7"
    assert anon_client.put(url, data=json.dumps("FAILED"), content_type="application/json").status_code == 204
    assert client.get("/api/boxes/incoming").get_json()[0]["status"] == "FAILED"
    assert anon_client.put(url, data=json.dumps("UNKNOWN"), content_type="application/json").status_code == 400
    other = f"/api/transactions/{poll_box['token']}/status?transactionid=99"
    assert anon_client.put(other, data=json.dumps("FINISHED"), content_type="application/json").status_code == 404


def test_poll_fetch_done_cycle(anon_client, client, upload, poll_box):
    image = upload().get_json()
    r = client.post(f"/api/boxes/{poll_box['id']}/send",
                    json={"profile": {"options": []}, "imageTagValuesSet": [{"imageId": image["id"]}]})
    assert r.status_code == 201
    token = poll_box["token"]
    items = anon_client.get(f"/api/transactions/{token}/outgoing/poll?n=10").get_json()
    assert len(items) == 1 and items[0]["image"]["imageId"] == image["id"]
    tx, img = items[0]["transaction"], items[0]["image"]
    data = anon_client.get(f"/api/transactions/{token}/outgoing?transactionid={tx['id']}&imageid={img['id']}")
    assert data.status_code == 200
    plain = zlib.decompressobj(-zlib.MAX_WBITS).decompress(data.data)
    assert b"DICM" in plain[:200] and b"Doe^John" not in plain
    assert anon_client.post(f"/api/transactions/{token}/outgoing/done", json=items[0]).status_code == 204
    assert anon_client.get(f"/api/transactions/{token}/outgoing/poll").status_code == 404
    out = client.get("/api/boxes/outgoing").get_json()
    assert out[0]["status"] == "FINISHED" and out[0]["sentImageCount"] == 1
    assert [b["online"] for b in client.get("/api/boxes").get_json()] == [True]


def test_send_validation(client, upload, poll_box):
    image = upload().get_json()
    assert client.post("/api/boxes/999/send", json={"imageTagValuesSet": []}).status_code == 404
    bad = client.post(f"/api/boxes/{poll_box['id']}/send", json={"imageTagValuesSet": [{"imageId": "x"}]})
    assert bad.status_code == 400
    unknown = client.post(f"/api/boxes/{poll_box['id']}/send", json={"imageTagValuesSet": [{"imageId": 4242}]})
    assert unknown.status_code == 404
    profile = client.post(f"/api/boxes/{poll_box['id']}/send",
                          json={"profile": {"options": [{"name": "NOPE"}]},
                                "imageTagValuesSet": [{"imageId": image["id"]}]})
    assert profile.status_code == 400
    assert client.get("/api/boxes/outgoing").get_json() == []


def test_box_admin_routes(client, user_client):
    assert user_client.post("/api/boxes/createconnection", json={"name": "x"}).status_code == 403
    assert client.post("/api/boxes/connect", json={"name": "y", "baseUrl": "not a url"}).status_code == 400
    ok = client.post("/api/boxes/connect",
                     json={"name": "y", "baseUrl": "http://127.0.0.1:1/api/transactions/"
                                                   "0b8e7a7e-6a55-4a47-9d8e-0a1c4b1e2f3a"})
    assert ok.status_code == 201 and ok.get_json()["sendMethod"] == "PUSH"
    again = client.post("/api/boxes/createconnection", json={"name": "y"})
    assert again.status_code == 400  # the name connects the other way
    assert client.delete(f"/api/boxes/{ok.get_json()['id']}").status_code == 204
    assert client.get("/api/boxes").get_json() == []
