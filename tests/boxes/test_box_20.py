"""A real `slicebox serve` with a peer that plays the original Slicebox 2.0 on the wire, all four ways.

peer20.Peer20 speaks as the Scala code does (zlib bodies flushed per element and sent chunked,
``{"status": ...}`` objects, POST image always 204, Play's JSON, 2.0's poll semantics); with
mode="old" it plays one of our boxes from before issue 10 (raw deflate).
"""
from __future__ import annotations

import io
import json

import pydicom
import pytest
from boxproc import BoxProcess, wait_for
from factories import make_dicom_bytes
from peer20 import Peer20, akka_deflate_pieces, java_inflate

pytestmark = pytest.mark.slow


@pytest.fixture
def box(tmp_path):
    b = BoxProcess("python-box", str(tmp_path / "box")).start()
    yield b
    b.stop()


def send(box: BoxProcess, box_id: int, image_ids: list[int]) -> dict:
    body = {"profile": {"options": []}, "imageTagValuesSet": [{"imageId": i, "tagValues": []} for i in image_ids]}
    return box.json("POST", f"/boxes/{box_id}/send", body, expect=201)


def outgoing(box: BoxProcess, tx_id: int) -> dict:
    return [t for t in box.json("GET", "/boxes/outgoing?count=100") if t["id"] == tx_id][0]


def test_we_push_to_and_poll_from_a_20_box(box):
    with Peer20() as peer:
        peer.paused = True  # away while we queue, so we decide what it will see
        push_box = box.json("POST", "/boxes/connect", {"name": "scala", "baseUrl": peer.base_url})
        ids = [box.upload(make_dicom_bytes(PatientName="Real^Name", PatientID="R1", rows=128, columns=128))["id"]
               for _ in range(3)]
        whole = send(box, push_box["id"], ids)
        skipping = send(box, push_box["id"], ids[1:2])
        box.json("DELETE", f"/images/{ids[1]}", expect=204)  # queued, then deleted: skipped when its turn comes
        polled = peer.queue([make_dicom_bytes(PatientName="From^Scala", rows=200, columns=200), b"not dicom at all",
                             make_dicom_bytes(PatientName="From^Scala")])
        peer.status_failures = 1  # busy when first told: we tell it again
        peer.paused = False

        wait_for(lambda: outgoing(box, whole["id"])["status"] == "FINISHED"
                 and outgoing(box, skipping["id"])["status"] == "FINISHED", what="both transactions finished")
        wait_for(lambda: len(peer.statuses) >= 3, what="two final statuses, one of them told twice")
        wait_for(lambda: polled.status == "FINISHED", what="the peer's transaction done")

        # push: zlib (a default java Inflater reads it), sent chunked, anonymized DICOM inside
        assert sorted((r.transaction_id, r.sequence_number) for r in peer.received) == \
            [(whole["id"], 1), (whole["id"], 3)]
        for r in peer.received:
            assert r.body[:2] == b"\x78\x01" and r.headers.get("transfer-encoding") == "chunked"
            assert r.headers["content-type"] == "application/octet-stream"
            assert r.data is not None and r.data == java_inflate(r.body)
            ds = pydicom.dcmread(io.BytesIO(r.data))
            assert ds.PatientName != "Real^Name" and ds.PatientIdentityRemoved == "YES"
        # the final status, as the object 2.0 reads, until answered; also after a skipped last image
        told = [tx for tx, _, _ in peer.statuses]
        assert len(told) == 3 and sorted(set(told)) == sorted([whole["id"], skipping["id"]]), told
        assert told[0] == told[1]  # the 503 was followed by the same PUT again
        for _, raw, content_type in peer.statuses:
            assert json.loads(raw) == {"status": "FINISHED"} and content_type == "application/json"
        assert outgoing(box, skipping["id"])["sentImageCount"] == 1
        warnings = box.json("GET", "/log?type=WARN&count=100")
        assert any("skipped image" in e["message"] and "no longer exists" in e["message"] for e in warnings)

        # poll: two stored, the bad one logged and reported done (never failed), nothing left offered
        assert peer.failed == []
        assert sorted(d["image"]["sequenceNumber"] for d in peer.done) == [1, 2, 3]
        assert box.sql("SELECT COUNT(*) FROM images WHERE id NOT IN (?, ?, ?)", tuple(ids))[0][0] == 2
        incoming = wait_for(lambda: [t for t in box.json("GET", "/boxes/incoming") if t["status"] == "FINISHED"],
                            what="incoming finished")
        assert incoming[0]["receivedImageCount"] == 3 and incoming[0]["addedImageCount"] == 2
        assert incoming[0]["outgoingTransactionId"] == polled.id
        assert any("rejected image 2/3" in e["message"] for e in box.json("GET", "/log?type=WARN&count=100"))
        stored = {r[0] for r in box.sql("SELECT patient_name FROM patients")}
        assert "From^Scala" in stored


def test_a_20_box_pushes_to_us_and_polls_us(tmp_path):
    box = BoxProcess("python-box", str(tmp_path / "box"), BOX_MAX_IMAGE_SIZE=1_000_000).start()
    try:
        _pushed_to_and_polled_by_20(box)
    finally:
        box.stop()


def _pushed_to_and_polled_by_20(box: BoxProcess) -> None:
    poll_box = box.json("POST", "/boxes/createconnection", {"name": "scala"})
    base = poll_box["baseUrl"]
    with Peer20() as peer:
        # larger than SLICEBOX_BOX_MAX_IMAGE_SIZE once inflated: refused with a 400 (2.0 skips it), counted,
        # the rest of its body read so the sender gets the answer; nothing stored
        huge = make_dicom_bytes(rows=1024, columns=1024)
        assert peer.push(base, 40, [huge]) == [400]
        assert box.count_images() == 0
        assert box.json("GET", "/boxes/incoming")[0]["receivedImageCount"] == 1
        assert any("larger than 1000000 bytes" in e["message"] for e in box.json("GET", "/log?type=WARN&count=100"))
        box.json("DELETE", f"/boxes/incoming/{box.json('GET', '/boxes/incoming')[0]['id']}", expect=204)

        # 2.0 pushes: chunked zlib level 9 (78 DA), SYNC_FLUSH per element; then PUT {"status": "FINISHED"}
        datasets = [make_dicom_bytes(PatientName="Scala^Pat", rows=160, columns=160) for _ in range(3)]
        assert b"".join(akka_deflate_pieces(datasets[0]))[:2] == b"\x78\xda"
        assert peer.push(base, 41, datasets) == [204, 204, 204]
        incoming = box.json("GET", "/boxes/incoming")
        assert [(t["outgoingTransactionId"], t["status"], t["receivedImageCount"], t["addedImageCount"])
                for t in incoming] == [(41, "FINISHED", 3, 3)]
        r = box.http.request("GET", f"{base}/status?transactionid=41")
        assert r.status == 200 and json.loads(r.data) == {"status": "FINISHED"}
        assert r.headers["Content-Type"].startswith("application/json")
        stored = sorted(box.request("GET", f"/images/{i}").data for i in
                        [x[0] for x in box.sql("SELECT id FROM images ORDER BY id")])
        assert stored == sorted(datasets)  # byte for byte

        # 2.0 polls: Play-readable items, zlib answers, done; a FINISHED transaction with an unsent
        # image is still offered (2.0 offers all but FAILED), a FAILED one is not
        mine = [box.upload(make_dicom_bytes(PatientName="Our^Patient"))["id"] for _ in range(3)]
        tx_a = send(box, poll_box["id"], mine[:2])
        tx_b = send(box, poll_box["id"], mine[2:])
        tx_c = send(box, poll_box["id"], mine[2:])
        box.sql_write("UPDATE outgoing_transactions SET status = 'FINISHED' WHERE id = ?", (tx_b["id"],))
        box.sql_write("UPDATE outgoing_transactions SET status = 'FAILED' WHERE id = ?", (tx_c["id"],))
        got = peer.poll_all(base)
        assert [(item["transaction"]["id"], item["image"]["sequenceNumber"]) for item, _ in got] == \
            [(tx_a["id"], 1), (tx_a["id"], 2), (tx_b["id"], 1)]
        for _, data in got:
            ds = pydicom.dcmread(io.BytesIO(data))
            assert ds.PatientName != "Our^Patient" and ds.PatientIdentityRemoved == "YES"
        assert outgoing(box, tx_a["id"])["status"] == "FINISHED"
        assert outgoing(box, tx_a["id"])["sentImageCount"] == 2
        assert outgoing(box, tx_c["id"])["status"] == "FAILED"


def test_an_old_box_of_ours_gets_raw_deflate_and_is_read(box):
    """A peer still on a version before issue 10: it refuses zlib (400), so we resend raw; we read its raw answers."""
    with Peer20(mode="old") as peer:
        peer.paused = True
        push_box = box.json("POST", "/boxes/connect", {"name": "old", "baseUrl": peer.base_url})
        ids = [box.upload(make_dicom_bytes())["id"] for _ in range(3)]
        tx = send(box, push_box["id"], ids)
        peer.queue([make_dicom_bytes(PatientName="Old^Box") for _ in range(2)])
        peer.paused = False
        wait_for(lambda: outgoing(box, tx["id"])["status"] == "FINISHED", what="pushed")
        wait_for(lambda: peer.outgoing[0].status == "FINISHED", what="polled")
        assert sorted(r.sequence_number for r in peer.received) == [1, 2, 3]  # none skipped
        assert all(r.body[:2] != b"\x78\x01" for r in peer.received)
        assert [json.loads(raw) for _, raw, _ in peer.statuses] == [{"status": "FINISHED"}]
        assert not any("skipped image" in e["message"] for e in box.json("GET", "/log?type=WARN&count=100"))
        assert any("reads raw deflate only" in e["message"] for e in box.json("GET", "/log?type=INFO&count=100"))
        assert peer.failed == [] and len(peer.done) == 2
        assert box.sql("SELECT COUNT(*) FROM patients WHERE patient_name = 'Old^Box'")[0][0] == 1
