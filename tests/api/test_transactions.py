"""Token routes a remote box uses, driven in-process: auth by token, bodies, bookkeeping."""
import json
import os
import zlib

import pytest
from factories import make_dicom_bytes


def deflate(data: bytes) -> bytes:
    """A body as Slicebox 2.0 sends it: zlib (Akka's Compression.deflate, level 9), SYNC_FLUSH per chunk."""
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    return b"".join(c.compress(data[i:i + 8192]) + c.flush(zlib.Z_SYNC_FLUSH)
                    for i in range(0, len(data), 8192)) + c.flush()


def raw_deflate(data: bytes) -> bytes:
    """A body as our boxes before issue 10 sent it."""
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
    assert status.status_code == 200 and status.is_json
    assert status.get_json() == {"status": "FINISHED"}


def test_push_accepts_zlib_and_raw_deflate_in_one_transaction(anon_client, client, poll_box, services):
    """A sender upgraded mid-transaction: image 1 raw deflate (old), image 2 zlib (new or 2.0)."""
    first, second = make_dicom_bytes(PatientName="A^One"), make_dicom_bytes(PatientName="B^Two")
    r = anon_client.post(_image_url(poll_box), data=raw_deflate(first), content_type="application/octet-stream")
    assert r.status_code == 204
    r = anon_client.post(_image_url(poll_box, seq=2), data=deflate(second),
                         content_type="application/octet-stream")
    assert r.status_code == 204
    incoming = client.get("/api/boxes/incoming").get_json()
    assert incoming[0]["status"] == "FINISHED" and incoming[0]["addedImageCount"] == 2
    stored = [services.storage.open(i).read() for i in (1, 2)]
    assert stored == [first, second]  # byte for byte what was compressed


def test_inflated_size_cap_refuses_and_counts_the_image(anon_client, client, poll_box, services):
    services.config["BOX_MAX_IMAGE_SIZE"] = 10_000
    big = make_dicom_bytes(rows=128, columns=128)
    assert len(big) > 10_000
    r = anon_client.post(_image_url(poll_box, total=1), data=deflate(big), content_type="application/octet-stream")
    assert r.status_code == 400 and "larger than 10000 bytes" in r.get_json()["error"]
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM images") == 0
    assert os.listdir(services.storage.temp_dir()) == []
    incoming = client.get("/api/boxes/incoming").get_json()
    assert incoming[0]["receivedImageCount"] == 1 and incoming[0]["addedImageCount"] == 0
    assert incoming[0]["status"] == "FINISHED"  # refused for good, so counted: the transaction ends


@pytest.mark.parametrize("compress", [deflate, raw_deflate], ids=["zlib", "raw"])
def test_truncated_transfer_is_refused_and_nothing_stored(anon_client, client, poll_box, services, compress):
    body = compress(make_dicom_bytes(rows=64, columns=64))
    r = anon_client.post(_image_url(poll_box), data=body[: len(body) // 2], content_type="application/octet-stream")
    assert r.status_code == 400
    assert "incomplete" in r.get_json()["error"]
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM images") == 0
    assert os.listdir(services.storage.temp_dir()) == []
    assert client.get("/api/boxes/incoming").get_json() == []  # not counted: the sender resends it


def test_body_that_is_not_compressed_is_400_and_counted(anon_client, client, poll_box):
    for body in (b"\xff" * 100, make_dicom_bytes(), deflate(make_dicom_bytes()) + b"trailing"):
        r = anon_client.post(_image_url(poll_box, total=3), data=body, content_type="application/octet-stream")
        assert r.status_code == 400, body[:10]
    incoming = client.get("/api/boxes/incoming").get_json()
    assert incoming[0]["receivedImageCount"] == 1  # the same sequence number, counted once


def test_status_put_accepts_the_object_and_a_bare_string_and_rejects_unknown(anon_client, client, poll_box):
    anon_client.post(_image_url(poll_box, total=5), data=deflate(make_dicom_bytes()),
                     content_type="application/octet-stream")
    url = f"/api/transactions/{poll_box['token']}/status?transactionid=7"

    def put(body, content_type="application/json"):
        return anon_client.put(url, data=body, content_type=content_type).status_code

    assert put(json.dumps({"status": "FAILED"})) == 204  # what Slicebox 2.0 sends
    assert client.get("/api/boxes/incoming").get_json()[0]["status"] == "FAILED"
    assert anon_client.get(url).get_json() == {"status": "FAILED"}
    assert put(json.dumps("PROCESSING")) == 204  # our boxes before issue 10
    assert anon_client.get(url).get_json() == {"status": "PROCESSING"}
    assert put("WAITING", "text/plain") == 204
    assert anon_client.get(url).get_json() == {"status": "WAITING"}
    assert put(json.dumps({"status": "FINISHED"})) == 204
    incoming = client.get("/api/boxes/incoming").get_json()[0]
    assert incoming["status"] == "FINISHED" and incoming["receivedImageCount"] == 5
    for bad in (json.dumps({"status": "UNKNOWN"}), json.dumps("UNKNOWN"), json.dumps({"state": "FINISHED"}),
                json.dumps({"status": 3}), "{not json"):
        assert put(bad) == 400, bad
    other = f"/api/transactions/{poll_box['token']}/status?transactionid=99"
    assert anon_client.put(other, data=json.dumps({"status": "FINISHED"}),
                           content_type="application/json").status_code == 404
    assert anon_client.get(other).status_code == 404


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
    body = data.data
    # zlib, as a 2.0 poller's default java.util.zip.Inflater() reads it: header, data, Adler-32
    assert body[:2] == b"\x78\x01"  # level 1 (SLICEBOX_BOX_COMPRESSION_LEVEL); 2.0 sends 78 DA (level 9)
    plain = zlib.decompress(body)
    assert body[-4:] == zlib.adler32(plain).to_bytes(4, "big")
    assert b"\x00\x00\xff\xff" in body  # flushed after the chunk, as Akka does
    with pytest.raises(zlib.error):
        zlib.decompress(body, -zlib.MAX_WBITS)  # not raw deflate any more
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


def test_poll_offers_every_transaction_that_is_not_failed(anon_client, client, upload, poll_box, services):
    """As Slicebox 2.0: whatever its status, an unsent image is offered unless the transaction FAILED."""
    ids = [upload(PatientName=f"P^{i}").get_json()["id"] for i in range(3)]
    for image_id in ids:
        r = client.post(f"/api/boxes/{poll_box['id']}/send",
                        json={"profile": {"options": []}, "imageTagValuesSet": [{"imageId": image_id}]})
        assert r.status_code == 201
    with services.db.connection() as conn:
        conn.execute("UPDATE outgoing_transactions SET status = 'FINISHED' WHERE id = 2")
        conn.execute("UPDATE outgoing_transactions SET status = 'FAILED' WHERE id = 3")
    items = anon_client.get(f"/api/transactions/{poll_box['token']}/outgoing/poll?n=10").get_json()
    assert [(i["transaction"]["id"], i["transaction"]["status"]) for i in items] == [(1, "WAITING"), (2, "FINISHED")]
