"""The box's SCU sending into dcmtk's storescp and into pynetdicom SCPs answering chosen statuses."""
from __future__ import annotations

import os
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicom_peers import DCMTK_ENV, dataset_bytes, free_port, stop, tool, wait_listening, write_ct
from slicebox.errors import BadGateway, NotFound
from slicebox.models import Page
from slicebox.services import logs, scus

pytestmark = pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)


@pytest.fixture
def storescp(tmp_path):
    """Start dcmtk storescp: start(*options) -> (port, output folder)."""
    procs = []

    def start(*options: str, ae_title: str = "STORESCP"):
        out = tmp_path / f"received{len(procs)}"
        out.mkdir()
        port = free_port()
        proc = subprocess.Popen([tool("storescp"), "-aet", ae_title, "-od", str(out), *options, str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=DCMTK_ENV)
        procs.append(proc)
        wait_listening(port, proc)
        return port, out

    yield start
    for proc in procs:
        stop(proc)


def _upload(client, path: str) -> int:
    with open(path, "rb") as fh:
        r = client.post("/api/images", data=fh.read(), content_type="application/octet-stream")
    assert r.status_code in (200, 201), r.get_data(as_text=True)
    return r.get_json()["id"]


def _scu(client, port: int, ae_title: str = "STORESCP", name: str = "pacs") -> int:
    r = client.post("/api/scus", json={"name": name, "aeTitle": ae_title, "host": "127.0.0.1", "port": port})
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()["id"]


def _received(folder) -> list[str]:
    return sorted(os.path.join(folder, f) for f in os.listdir(folder))


def test_send_to_storescp_over_one_association(client, services, storescp, tmp_path):
    port, out = storescp()
    files = [write_ct(str(tmp_path / f"{i}.dcm"), number=i) for i in range(5)]
    ids = [_upload(client, f) for f in files]
    scu_id = _scu(client, port)
    r = client.post(f"/api/scus/{scu_id}/send", json=ids)
    assert r.status_code == 204, r.get_data(as_text=True)
    received = _received(out)
    assert len(received) == 5
    by_uid = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in received}
    for f in files:
        sent = pydicom.dcmread(f)
        got = by_uid[sent.SOPInstanceUID]
        assert pydicom.dcmread(got).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert dataset_bytes(got) == dataset_bytes(f)  # own syntax, bytes unchanged
    entries = [e.message for e in logs.list_entries(services, Page(0, 50), "SCU", None)]
    assert any("sent 5 image(s) to SCU 'pacs' (STORESCP at 127.0.0.1:" in m for m in entries), entries


def test_jpeg2000_is_decompressed_when_the_peer_accepts_only_uncompressed(client, storescp):
    port, out = storescp()  # storescp accepts only uncompressed syntaxes by default
    j2k = get_testdata_file("JPEG2000.dcm", download=False)
    image_id = _upload(client, j2k)
    r = client.post(f"/api/scus/{_scu(client, port)}/send", json=[image_id])
    assert r.status_code == 204, r.get_data(as_text=True)
    (got,) = _received(out)
    received = pydicom.dcmread(got)
    assert received.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    source = pydicom.dcmread(j2k)
    assert np.array_equal(received.pixel_array, source.pixel_array)


def test_jpeg2000_goes_as_is_when_the_peer_accepts_it(client, storescp):
    port, out = storescp("+xa")
    j2k = get_testdata_file("JPEG2000.dcm", download=False)
    image_id = _upload(client, j2k)
    r = client.post(f"/api/scus/{_scu(client, port)}/send", json=[image_id])
    assert r.status_code == 204, r.get_data(as_text=True)
    (got,) = _received(out)
    received = pydicom.dcmread(got)
    assert received.file_meta.TransferSyntaxUID == JPEG2000
    assert received.PixelData == pydicom.dcmread(j2k).PixelData


def test_unknown_scu_and_unknown_image_are_404(client, services, storescp, tmp_path):
    port, out = storescp()
    image_id = _upload(client, write_ct(str(tmp_path / "a.dcm")))
    r = client.post("/api/scus/999/send", json=[image_id])
    assert r.status_code == 404 and "SCU" in r.get_json()["error"]
    scu_id = _scu(client, port)
    r = client.post(f"/api/scus/{scu_id}/send", json=[image_id, 12345])
    assert r.status_code == 404 and "12345" in r.get_json()["error"]
    assert _received(out) == []  # nothing was sent
    with pytest.raises(NotFound):
        scus.send_images(services, 999, [image_id])


def test_peer_down_is_502_naming_the_peer(client, services, tmp_path):
    image_id = _upload(client, write_ct(str(tmp_path / "a.dcm")))
    port = free_port()  # nothing listens there
    scu_id = _scu(client, port, ae_title="DOWNPACS")
    r = client.post(f"/api/scus/{scu_id}/send", json=[image_id])
    assert r.status_code == 502
    message = r.get_json()["error"]
    assert "DOWNPACS" in message and f"127.0.0.1:{port}" in message
    errors = [e for e in logs.list_entries(services, Page(0, 50), "SCU", "ERROR")]
    assert errors and "DOWNPACS" in errors[0].message
    with pytest.raises(BadGateway):
        scus.send_images(services, scu_id, [image_id])


def test_peer_refusing_the_association_is_502(client, storescp, tmp_path):
    port, _ = storescp("--refuse")
    image_id = _upload(client, write_ct(str(tmp_path / "a.dcm")))
    r = client.post(f"/api/scus/{_scu(client, port)}/send", json=[image_id])
    assert r.status_code == 502
    assert "refused the association" in r.get_json()["error"]


@pytest.fixture
def status_scp():
    """A pynetdicom storage SCP answering each instance with statuses[SOP Instance UID] (default success)."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    servers = []

    def start(statuses: dict[str, int]) -> tuple[int, list[str]]:
        received: list[str] = []

        def handle(event):
            uid = str(event.request.AffectedSOPInstanceUID)
            received.append(uid)
            return statuses.get(uid, 0x0000)

        ae = AE(ae_title="STATUSSCP")
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        port = free_port()
        servers.append(ae.start_server(("127.0.0.1", port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, handle)]))
        return port, received

    yield start
    for server in servers:
        server.shutdown()


def test_failure_status_is_502_listing_the_images(client, services, status_scp, tmp_path):
    files = [write_ct(str(tmp_path / f"{i}.dcm"), number=i) for i in range(3)]
    ids = [_upload(client, f) for f in files]
    bad_uid = pydicom.dcmread(files[1]).SOPInstanceUID
    port, received = status_scp({bad_uid: 0xA700})
    r = client.post(f"/api/scus/{_scu(client, port, 'STATUSSCP')}/send", json=ids)
    assert r.status_code == 502
    message = r.get_json()["error"]
    assert "STATUSSCP" in message and f"{ids[1]} (" in message and "0xA700" in message
    assert f"{ids[0]} (" not in message and f"{ids[2]} (" not in message
    assert len(received) == 3  # the others were still sent
    errors = logs.list_entries(services, Page(0, 50), "SCU", "ERROR")
    assert errors and f"{ids[1]} (" in errors[0].message


def test_warning_status_counts_as_success(client, services, status_scp, tmp_path):
    path = write_ct(str(tmp_path / "w.dcm"))
    image_id = _upload(client, path)
    port, received = status_scp({pydicom.dcmread(path).SOPInstanceUID: 0xB000})
    scu_id = _scu(client, port, "STATUSSCP")
    r = client.post(f"/api/scus/{scu_id}/send", json=[image_id])
    assert r.status_code == 204, r.get_data(as_text=True)
    result = scus.send_images(services, scu_id, [image_id])
    assert result.sent == (image_id,) and result.warnings == (image_id,)
