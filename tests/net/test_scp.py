"""The box's DICOM listener against dcmtk's echoscu / storescu (real processes, loopback)."""
from __future__ import annotations

import os
import threading
from io import BytesIO

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000

from dicom_peers import dataset_bytes, free_port, run, tool, wait_until, write_ct
from slicebox.models import Page
from slicebox.services import logs, scps

pytestmark = pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)


def _images(services) -> list[dict]:
    with services.db.connection() as conn:
        return conn.all("SELECT i.id, i.sop_instance_uid, ss.source_type, ss.source_id FROM images i "
                        "JOIN series_sources ss ON ss.series_id = i.series_id ORDER BY i.id")


def _stored_path(services, image_id: int) -> str:
    return services.storage.path(image_id)


def _log(services, subject: str) -> list:
    return logs.list_entries(services, Page(0, 1000), subject, None)


def _store(port: int, files: list[str], options: tuple[str, ...] = ()) -> None:
    result = run([tool("storescu"), "-aec", "SLICEBOX", *options, "127.0.0.1", str(port), *files])
    assert result.returncode == 0, result.stderr[-2000:]


def test_echoscu_gets_an_answer(scp):
    _, _, port = scp
    result = run([tool("echoscu"), "-aec", "SLICEBOX", "127.0.0.1", str(port)])
    assert result.returncode == 0, result.stderr


def test_storescu_ct_is_stored_raw_with_source_scp(scp):
    services, row, port = scp
    ct = get_testdata_file("CT_small.dcm", download=False)
    _store(port, [ct], ("-R",))
    images = _images(services)
    assert len(images) == 1
    image = images[0]
    assert (image["source_type"], image["source_id"]) == ("scp", row.id)
    stored = _stored_path(services, image["id"])
    got, sent = pydicom.dcmread(stored), pydicom.dcmread(ct)
    assert (got.SOPInstanceUID, got.PatientName, got.PixelData) == (sent.SOPInstanceUID, sent.PatientName,
                                                                    sent.PixelData)
    meta = pydicom.dcmread(stored, stop_before_pixels=True).file_meta
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert meta.MediaStorageSOPInstanceUID == pydicom.dcmread(ct).SOPInstanceUID
    entries = [e.message for e in _log(services, "SCP")]
    assert any("received 1 image(s) from STORESCU" in m for m in entries), entries


def test_generated_ct_bytes_are_stored_as_they_arrived(scp, tmp_path):
    services, _, port = scp
    path = write_ct(str(tmp_path / "ct.dcm"))
    _store(port, [path], ("-R",))
    (image,) = _images(services)
    assert dataset_bytes(_stored_path(services, image["id"])) == dataset_bytes(path)


def test_jpeg2000_is_stored_compressed_as_sent(scp):
    services, _, port = scp
    j2k = get_testdata_file("JPEG2000.dcm", download=False)
    _store(port, [j2k], ("-R", "-xw"))
    (image,) = _images(services)
    stored = _stored_path(services, image["id"])
    got = pydicom.dcmread(stored)
    assert got.file_meta.TransferSyntaxUID == JPEG2000
    assert got.PixelData == pydicom.dcmread(j2k).PixelData  # the compressed fragments, never decoded


def test_a_50_mb_multiframe_arrives_whole(scp, tmp_path):
    services, _, port = scp
    path = write_ct(str(tmp_path / "mf.dcm"), rows=512, columns=512, frames=100,
                    sop_class="1.2.840.10008.5.1.4.1.1.2.1")
    assert os.path.getsize(path) > 50_000_000
    _store(port, [path], ("-R",))
    (image,) = _images(services)
    stored = _stored_path(services, image["id"])
    assert dataset_bytes(stored) == dataset_bytes(path)


def test_200_files_over_one_association(scp, tmp_path):
    services, _, port = scp
    folder = tmp_path / "many"
    folder.mkdir()
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    files = [write_ct(str(folder / f"{i:03d}.dcm"), study_uid=study, series_uid=series, number=i)
             for i in range(200)]
    _store(port, files, ("-R",))
    assert len(_images(services)) == 200
    received = [e.message for e in _log(services, "SCP") if "received" in e.message]
    assert len(received) == 1 and "SCP 'pacs-in' received 200 image(s) from STORESCU" in received[0]


def test_four_associations_at_once(scp, tmp_path):
    services, _, port = scp
    batches = []
    for b in range(4):
        folder = tmp_path / f"batch{b}"
        folder.mkdir()
        study = pydicom.uid.generate_uid()
        batches.append([write_ct(str(folder / f"{i}.dcm"), patient=f"Par^{b}", patient_id=f"P{b}",
                                 study_uid=study, number=i) for i in range(15)])
    errors: list[str] = []

    def send(files):
        result = run([tool("storescu"), "-aec", "SLICEBOX", "-R", "127.0.0.1", str(port), *files])
        if result.returncode != 0:
            errors.append(result.stderr[-500:])

    threads = [threading.Thread(target=send, args=(files,)) for files in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_images(services)) == 60
    received = [e.message for e in _log(services, "SCP") if "received 15 image(s)" in e.message]
    assert len(received) == 4


def _pynetdicom_store(port: int, dataset_path: str, sop_class: str):
    """C-STORE a file's bytes unparsed with pynetdicom (so a malformed dataset reaches the box)."""
    from pynetdicom import AE

    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(sop_class, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title="SLICEBOX")
    assert assoc.is_established
    try:
        return assoc.send_c_store(dataset_path)  # chunked send: the bytes go as they are
    finally:
        assoc.release()


def _with_dataset(tmp_path, name: str, meta_source: str, body: bytes) -> str:
    """A file with ``meta_source``'s preamble and file meta, then ``body`` as its dataset."""
    with open(meta_source, "rb") as fh:
        whole = fh.read()
    head_len = len(whole) - len(dataset_bytes(meta_source))
    path = str(tmp_path / name)
    with open(path, "wb") as fh:
        fh.write(whole[:head_len] + body)
    return path


def test_malformed_dataset_gets_a_failure_status_and_nothing_is_stored(scp, tmp_path, private_tmp):
    services, _, port = scp
    good = write_ct(str(tmp_path / "good.dcm"))
    # an element claiming 1,000,000 bytes where 10 follow
    bad = _with_dataset(tmp_path, "bad.dcm", good, b"\x08\x00\x18\x00UI\x40\x42" + b"1.2.3" + b"\x10\x00\x10\x00PN" + b"\xff\xff" + b"x" * 10)
    status = _pynetdicom_store(port, bad, "1.2.840.10008.5.1.4.1.1.2")
    assert 0xC000 <= status.Status <= 0xCFFF
    assert _images(services) == []
    errors = [e for e in _log(services, "SCP") if e.entry_type == "ERROR"]
    assert errors and "refused a dataset from TESTSCU" in errors[0].message
    assert os.listdir(private_tmp) == []


def test_dataset_of_another_sop_class_gets_0xA900(scp, tmp_path):
    services, _, port = scp
    mr = write_ct(str(tmp_path / "mr.dcm"), sop_class="1.2.840.10008.5.1.4.1.1.4")
    # claim CT in the file meta (hence the command) while the dataset says MR (same length UIDs)
    with open(mr, "rb") as fh:
        data = fh.read()
    head = len(data) - len(dataset_bytes(mr))
    data = data[:head].replace(b"1.2.840.10008.5.1.4.1.1.4", b"1.2.840.10008.5.1.4.1.1.2") + data[head:]
    with open(mr, "wb") as fh:
        fh.write(data)
    status = _pynetdicom_store(port, mr, "1.2.840.10008.5.1.4.1.1.2")
    assert status.Status == 0xA900
    assert _images(services) == []


def test_an_already_stored_image_is_success_again(scp, tmp_path):
    services, _, port = scp
    path = write_ct(str(tmp_path / "one.dcm"))
    _store(port, [path], ("-R",))
    _store(port, [path], ("-R",))
    assert len(_images(services)) == 1


def test_association_aborted_mid_dataset_leaves_nothing(scp, tmp_path, private_tmp):
    from pynetdicom import AE
    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE

    services, _, port = scp
    path = write_ct(str(tmp_path / "big.dcm"), rows=256, columns=256, frames=40,
                    sop_class="1.2.840.10008.5.1.4.1.1.2.1")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ae = AE(ae_title="ABORTER")
    ae.add_requested_context(ds.SOPClassUID, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title="SLICEBOX", max_pdu=16384)
    assert assoc.is_established
    req = C_STORE()
    req.MessageID = 1
    req.AffectedSOPClassUID = ds.SOPClassUID
    req.AffectedSOPInstanceUID = ds.SOPInstanceUID
    req.Priority = 2
    req.DataSet = BytesIO(dataset_bytes(path))
    msg = C_STORE_RQ()
    msg.primitive_to_message(req)
    cx_id = assoc.accepted_contexts[0].context_id
    pdus = msg.encode_msg(cx_id, assoc.acceptor.maximum_length)
    for _ in range(20):  # the command and the first part of the dataset, never its last fragment
        assoc.dul.send_pdu(next(pdus))
    wait_until(lambda: any(os.path.getsize(os.path.join(private_tmp, f)) > 100_000
                           for f in os.listdir(private_tmp)), what="partial dataset on the box")
    assoc.abort()
    wait_until(lambda: os.listdir(private_tmp) == [], what="partial dataset removed")
    assert _images(services) == []


def test_port_in_use_is_logged_and_retried(box):
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    row = scps.add_scp(box, "busy", "BUSY", port)
    part = scps.ScpListener(box, row, retry_seconds=0.05)
    try:
        part.start()  # never raises
        assert part.alive() and not part.listening
        errors = [e for e in _log(box, "SCP") if e.entry_type == "ERROR"]
        assert len(errors) == 1 and f"cannot listen on port {port}" in errors[0].message
        holder.close()
        wait_until(lambda: part.listening, what="listener bound after the port was freed")
        result = run([tool("echoscu"), "-aec", "BUSY", "127.0.0.1", str(port)])
        assert result.returncode == 0, result.stderr
    finally:
        holder.close()
        part.stop()


def test_supervisor_starts_restarts_and_stops_listeners(box):
    from slicebox.jobs import scps as provider
    from slicebox.jobs.supervisor import Supervisor

    port = free_port()
    supervisor = Supervisor(box, [provider.parts], interval=0.1)
    try:
        row = scps.add_scp(box, "sup", "SUP", port)
        supervisor.reconcile()
        assert supervisor.keys() == [f"scp:{row.id}:SUP:{port}"]
        assert run([tool("echoscu"), "-aec", "SUP", "127.0.0.1", str(port)]).returncode == 0
        scps.delete_scp(box, row.id)
        supervisor.reconcile()
        assert supervisor.keys() == []
        assert run([tool("echoscu"), "-aec", "SUP", "127.0.0.1", str(port)]).returncode != 0
    finally:
        supervisor.stop()
