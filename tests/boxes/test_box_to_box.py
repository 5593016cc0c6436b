"""Two real boxes, separate processes on loopback, sharing images both ways."""
from __future__ import annotations

import json
import os

import pytest
from boxproc import AUTH, BoxProcess, wait_for
from factories import make_dicom_bytes

pytestmark = pytest.mark.slow


@pytest.fixture
def boxes(tmp_path):
    uni = BoxProcess("uni", str(tmp_path / "uni")).start()
    hospital = BoxProcess("hospital", str(tmp_path / "hospital")).start()
    yield uni, hospital
    for box in (uni, hospital):
        box.stop()


def connect(uni: BoxProcess, hospital: BoxProcess) -> tuple[dict, dict]:
    """uni is public (creates the connection), hospital connects and does the talking."""
    poll_box = uni.json("POST", "/boxes/createconnection", {"name": "hospital"})
    assert poll_box["sendMethod"] == "POLL"
    assert poll_box["baseUrl"] == f"{uni.url}/api/transactions/{poll_box['token']}"
    push_box = hospital.json("POST", "/boxes/connect", {"name": "uni", "baseUrl": poll_box["baseUrl"]})
    assert push_box["sendMethod"] == "PUSH"
    return poll_box, push_box


def send_all(box: BoxProcess, box_id: int, image_ids: list[int]) -> dict:
    body = {"profile": {"options": []}, "imageTagValuesSet": [{"imageId": i, "tagValues": []} for i in image_ids]}
    return box.json("POST", f"/boxes/{box_id}/send", body, expect=201)





def test_push_50_images_from_hospital_to_uni(boxes):
    uni, hospital = boxes
    poll_box, push_box = connect(uni, hospital)
    ids = [hospital.upload(make_dicom_bytes(PatientName="Push^Pat", PatientID="P1"))["id"] for _ in range(50)]
    tx = send_all(hospital, push_box["id"], ids)
    assert tx["status"] == "WAITING" and tx["totalImageCount"] == 50

    wait_for(lambda: uni.count_images() == 50, what="50 images on uni")
    out = wait_for(lambda: [t for t in hospital.json("GET", "/boxes/outgoing") if t["status"] == "FINISHED"],
                   what="outgoing FINISHED")
    assert out[0]["sentImageCount"] == 50
    incoming = wait_for(lambda: [t for t in uni.json("GET", "/boxes/incoming") if t["status"] == "FINISHED"],
                        what="incoming FINISHED")
    assert incoming[0]["receivedImageCount"] == 50 and incoming[0]["addedImageCount"] == 50
    assert incoming[0]["boxName"] == "hospital"
    assert len(uni.json("GET", f"/boxes/incoming/{incoming[0]['id']}/images")) == 50
    assert len(hospital.json("GET", f"/boxes/outgoing/{out[0]['id']}/images")) == 50
    # received images carry the box as their source
    assert uni.sql("SELECT DISTINCT source_type, source_name FROM series_sources") == [("box", "hospital")]
    # both sides see each other online
    assert wait_for(lambda: [b for b in uni.json("GET", "/boxes") if b["online"]], what="uni sees hospital")
    assert wait_for(lambda: [b for b in hospital.json("GET", "/boxes") if b["online"]], what="hospital sees uni")


def test_poll_50_images_from_uni_to_hospital(boxes):
    uni, hospital = boxes
    poll_box, _push_box = connect(uni, hospital)
    ids = [uni.upload(make_dicom_bytes(PatientName="Poll^Pat", PatientID="P2"))["id"] for _ in range(50)]
    send_all(uni, poll_box["id"], ids)
    wait_for(lambda: hospital.count_images() == 50, what="50 images on hospital")
    out = wait_for(lambda: [t for t in uni.json("GET", "/boxes/outgoing") if t["status"] == "FINISHED"],
                   what="uni outgoing FINISHED")
    assert out[0]["sentImageCount"] == 50
    incoming = wait_for(lambda: [t for t in hospital.json("GET", "/boxes/incoming")
                                 if t["status"] == "FINISHED"], what="hospital incoming FINISHED")
    assert incoming[0]["receivedImageCount"] == 50


def test_deleted_transaction_is_not_sent(boxes):
    uni, hospital = boxes
    _poll_box, push_box = connect(uni, hospital)
    uni.stop()  # the peer is away: the transaction waits
    ids = [hospital.upload(make_dicom_bytes())["id"] for _ in range(5)]
    tx = send_all(hospital, push_box["id"], ids)
    hospital.json("DELETE", f"/boxes/outgoing/{tx['id']}", expect=204)
    assert hospital.json("GET", "/boxes/outgoing") == []
    uni.start()
    keep = send_all(hospital, push_box["id"], ids[:1])  # a later transaction still goes
    wait_for(lambda: uni.count_images() == 1, what="the one later image")
    wait_for(lambda: hospital.json("GET", "/boxes/outgoing")[0]["status"] == "FINISHED", what="finished")
    assert uni.count_images() == 1
    assert keep["totalImageCount"] == 1


def test_image_deleted_before_sending_is_skipped_and_logged(boxes):
    uni, hospital = boxes
    _poll_box, push_box = connect(uni, hospital)
    uni.stop()
    ids = [hospital.upload(make_dicom_bytes())["id"] for _ in range(3)]
    send_all(hospital, push_box["id"], ids)
    hospital.json("DELETE", f"/images/{ids[1]}", expect=204)
    uni.start()
    done = wait_for(lambda: [t for t in hospital.json("GET", "/boxes/outgoing") if t["status"] == "FINISHED"],
                    what="finished")
    assert done[0]["sentImageCount"] == 3  # the skipped image counts as handled
    assert uni.count_images() == 2
    warnings = hospital.json("GET", "/log?type=WARN&count=100")
    assert any("skipped image" in e["message"] for e in warnings), warnings


def test_sender_killed_mid_transfer_delivers_every_image_exactly_once(tmp_path):
    uni = BoxProcess("uni", str(tmp_path / "uni")).start()
    hospital = BoxProcess("hospital", str(tmp_path / "hospital"), BOX_PARALLELISM=2).start()
    try:
        _poll_box, push_box = connect(uni, hospital)
        n = 120
        ids = [hospital.upload(make_dicom_bytes(rows=256, columns=256))["id"] for _ in range(n)]
        send_all(hospital, push_box["id"], ids)
        wait_for(lambda: uni.count_images() >= 10, interval=0.02, what="some images arrived")
        hospital.kill()
        arrived_at_kill = uni.count_images()
        assert arrived_at_kill < n, "transfer finished before the kill; make it bigger"
        hospital.start()
        wait_for(lambda: uni.count_images() == n, timeout=300, what="all images on uni")
        incoming = wait_for(lambda: [t for t in uni.json("GET", "/boxes/incoming")
                                     if t["status"] == "FINISHED"], timeout=300, what="incoming FINISHED")
        assert incoming[0]["receivedImageCount"] == n
        assert incoming[0]["addedImageCount"] == n
        assert uni.sql("SELECT COUNT(*) FROM incoming_images")[0][0] == n
        # no duplicates: one row per SOP Instance UID, one file per image
        assert uni.sql("SELECT COUNT(DISTINCT sop_instance_uid) FROM images")[0][0] == n
        files = [f for f in os.listdir(os.path.join(uni.data_dir, "storage")) if f.isdigit()]
        assert len(files) == n
        out = wait_for(lambda: [t for t in hospital.json("GET", "/boxes/outgoing") if t["status"] == "FINISHED"],
                       what="hospital FINISHED")
        assert out[0]["sentImageCount"] == n
    finally:
        uni.stop()
        hospital.stop()


def test_anonymized_on_arrival_and_reidentified_on_return(boxes):
    uni, hospital = boxes
    poll_box, push_box = connect(uni, hospital)
    real = [make_dicom_bytes(PatientName="Real^Person", PatientID="REAL-ID-77", StudyDescription="Secret study",
                             InstitutionName="Saint Real Hospital") for _ in range(5)]
    ids = [hospital.upload(d)["id"] for d in real]
    custom = [{"tagPath": {"tag": 0x00100010}, "value": "Project^001"}]
    body = {"profile": {"options": [{"name": "RETAIN_PATIENT_CHARACTERISTICS"}]},
            "imageTagValuesSet": [{"imageId": i, "tagValues": custom} for i in ids]}
    hospital.json("POST", f"/boxes/{push_box['id']}/send", body, expect=201)
    wait_for(lambda: uni.count_images() == 5, what="5 anonymized images on uni")

    # what arrived carries no real identity, anywhere in the bytes
    assert uni.sql("SELECT patient_name FROM patients") == [("Project^001",)]
    storage = os.path.join(uni.data_dir, "storage")
    for name in os.listdir(storage):
        if name.isdigit():
            with open(os.path.join(storage, name), "rb") as fh:
                data = fh.read()
            for secret in (b"Real^Person", b"REAL-ID-77", b"Secret study", b"Saint Real Hospital"):
                assert secret not in data, (secret, name)
            assert b"YES" in data
    uni_study_uids = {r[0] for r in uni.sql("SELECT study_instance_uid FROM studies")}
    hospital_study_uids = {r[0] for r in hospital.sql("SELECT study_instance_uid FROM studies")}
    assert len(uni_study_uids) == 1 and not uni_study_uids & hospital_study_uids
    keys = hospital.json("GET", "/anonymization/keys?count=100")
    assert len(keys) == 5 and {k["anonPatientName"] for k in keys} == {"Project^001"}

    # send them back: hospital restores the real identity onto its original rows
    back_ids = [r[0] for r in uni.sql("SELECT id FROM images ORDER BY id")]
    send_all(uni, poll_box["id"], back_ids)
    incoming = wait_for(lambda: [t for t in hospital.json("GET", "/boxes/incoming") if t["status"] == "FINISHED"],
                        what="returned images received")
    assert incoming[0]["receivedImageCount"] == 5
    assert incoming[0]["addedImageCount"] == 0  # all landed on the original images
    assert hospital.count_images() == 5
    assert sorted(r[0] for r in hospital.sql("SELECT id FROM images")) == sorted(ids)
    assert hospital.sql("SELECT patient_name, patient_id FROM patients") == [("Real^Person", "REAL-ID-77")]


def _tamper_without_series_uid(box: BoxProcess, image_id: int) -> None:
    """Replace a stored file with valid DICOM the peer's ingest must refuse (no Series UID)."""
    import io

    import pydicom

    path = os.path.join(box.data_dir, "storage", str(image_id))
    ds = pydicom.dcmread(path)
    del ds.SeriesInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf)
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())


def test_image_refused_by_the_receiver_is_skipped_and_reported(boxes):
    uni, hospital = boxes
    _poll_box, push_box = connect(uni, hospital)
    uni.stop()
    ids = [hospital.upload(make_dicom_bytes())["id"] for _ in range(3)]
    _tamper_without_series_uid(hospital, ids[0])
    send_all(hospital, push_box["id"], ids)
    uni.start()
    done = wait_for(lambda: [t for t in hospital.json("GET", "/boxes/outgoing") if t["status"] == "FINISHED"],
                    what="finished")
    assert done[0]["sentImageCount"] == 3
    assert uni.count_images() == 2
    warnings = hospital.json("GET", "/log?type=WARN&count=100")
    assert any("box answered 400" in e["message"] and "SeriesInstanceUID" in e["message"] for e in warnings), \
        warnings
    uni_warnings = uni.json("GET", "/log?type=WARN&count=100")
    assert any("rejected image" in e["message"] for e in uni_warnings), uni_warnings


def test_polled_image_the_receiver_cannot_store_is_skipped_and_reported_done(boxes):
    """As a 2.0 poller: log it, count it, say done; failing would stop every image after it."""
    uni, hospital = boxes
    poll_box, _push_box = connect(uni, hospital)
    hospital.stop()
    ids = [uni.upload(make_dicom_bytes())["id"] for _ in range(3)]
    _tamper_without_series_uid(uni, ids[1])
    tx = send_all(uni, poll_box["id"], ids)
    hospital.start()
    done = wait_for(lambda: [t for t in uni.json("GET", "/boxes/outgoing") if t["status"] == "FINISHED"],
                    what="uni's transaction FINISHED")
    assert done[0]["id"] == tx["id"] and done[0]["sentImageCount"] == 3
    assert uni.json("GET", "/log?type=ERROR&count=100") == []
    assert hospital.count_images() == 2
    incoming = wait_for(lambda: [t for t in hospital.json("GET", "/boxes/incoming") if t["status"] == "FINISHED"],
                        what="hospital's incoming FINISHED")
    assert incoming[0]["receivedImageCount"] == 3 and incoming[0]["addedImageCount"] == 2
    warnings = hospital.json("GET", "/log?type=WARN&count=100")
    assert any("rejected image 2/3" in e["message"] and "SeriesInstanceUID" in e["message"] for e in warnings), \
        warnings


def test_sender_upgraded_from_raw_deflate_finishes_its_transaction_in_flight(boxes):
    """hospital ran a version that pushed raw deflate; it sent 2 of 4 images, then was upgraded."""
    import zlib

    uni, hospital = boxes
    poll_box, push_box = connect(uni, hospital)
    uni.stop()  # away: nothing leaves hospital while we set the scene
    ids = [hospital.upload(make_dicom_bytes(PatientName="Upgrade^Pat"))["id"] for _ in range(4)]
    tx = send_all(hospital, push_box["id"], ids)
    # what the old version sent for images 1 and 2: anonymized, raw deflate, Content-Length
    old_bodies = []
    for image_id in ids[:2]:
        r = hospital.http.request("POST", f"{hospital.url}/api/images/{image_id}/anonymized",
                                  body=json.dumps({"options": []}).encode(),
                                  headers={"Content-Type": "application/json", "Authorization": AUTH})
        assert r.status == 200, r.data[:300]
        c = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
        old_bodies.append(c.compress(r.data) + c.flush())
    hospital.stop()
    uni.start()
    for seq, body in enumerate(old_bodies, start=1):
        r = uni.http.request("POST", f"{poll_box['baseUrl']}/image?transactionid={tx['id']}&sequencenumber={seq}"
                             f"&totalimagecount=4", body=body,
                             headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(body))})
        assert r.status == 204, r.data[:300]
    # ... and what it recorded before it stopped
    hospital.sql_write("UPDATE outgoing_images SET sent = 1 WHERE outgoing_transaction_id = ? AND sequence_number <= 2",
                       (tx["id"],))
    hospital.sql_write("UPDATE outgoing_transactions SET sent_image_count = 2, status = 'PROCESSING' WHERE id = ?",
                       (tx["id"],))
    assert uni.json("GET", "/boxes/incoming")[0]["status"] == "PROCESSING"
    hospital.start()  # the new version: zlib from here on
    incoming = wait_for(lambda: [t for t in uni.json("GET", "/boxes/incoming") if t["status"] == "FINISHED"],
                        what="uni's incoming FINISHED")
    assert incoming[0]["receivedImageCount"] == 4 and incoming[0]["addedImageCount"] == 4
    assert uni.count_images() == 4
    assert uni.sql("SELECT COUNT(DISTINCT sop_instance_uid) FROM images")[0][0] == 4
    out = wait_for(lambda: [t for t in hospital.json("GET", "/boxes/outgoing") if t["status"] == "FINISHED"],
                   what="hospital FINISHED")
    assert out[0]["sentImageCount"] == 4
    assert uni.json("GET", "/log?type=WARN&count=100") == []
