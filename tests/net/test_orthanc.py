"""A round trip with Orthanc (Debian's package): Orthanc C-STOREs to the box, the box sends back.

Orthanc listens on every interface, so it runs in a private network namespace
holding only loopback; the box's listener is bound, and its SCU connects, from
inside that namespace.  Skipped (with the reason) only where namespaces are not
allowed; a missing Orthanc fails under CI=true.
"""
from __future__ import annotations

import json
import os
import time

import pydicom
import pytest

from dicom_peers import stop, write_ct
from netns import find_orthanc, http, in_netns, netns_allowed, start_orthanc
from slicebox.services import scps, scus

pytestmark = pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)

HTTP_PORT, DICOM_PORT, BOX_PORT = 8042, 4242, 11112  # free: the namespace is Orthanc's own


@pytest.fixture
def orthanc(box, tmp_path):
    if find_orthanc() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but Orthanc is not installed (.ci/run installs it)")
        pytest.skip("Orthanc is not installed (apt-get install orthanc)")
    allowed, why = netns_allowed()
    if not allowed:
        pytest.skip(f"Orthanc needs a private network namespace: {why}")
    log = open(tmp_path / "orthanc.log", "wb")
    proc = start_orthanc(str(tmp_path), HTTP_PORT, DICOM_PORT, {"box": ["SLICEBOX", "127.0.0.1", BOX_PORT]}, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if in_netns(proc.pid, http, HTTP_PORT, "GET", "/system", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Orthanc did not start: {(tmp_path / 'orthanc.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        stop(proc)
        log.close()


def test_orthanc_stores_to_the_box_and_the_box_sends_back(box, orthanc, tmp_path):
    pid = orthanc
    row = scps.add_scp(box, "from-orthanc", "SLICEBOX", BOX_PORT)
    listener = scps.ScpListener(box, row)
    in_netns(pid, listener.start)  # binds inside Orthanc's namespace
    try:
        assert listener.listening
        path = write_ct(str(tmp_path / "rt.dcm"), rows=64, columns=64, patient="Round^Trip")
        with open(path, "rb") as fh:
            status, body = in_netns(pid, http, HTTP_PORT, "POST", "/instances", fh.read())
        assert status == 200, body
        orthanc_id = json.loads(body)["ID"]
        status, body = in_netns(pid, http, HTTP_PORT, "POST", "/modalities/box/store", orthanc_id.encode())
        assert status == 200, body
        with box.db.connection() as conn:
            images = conn.all("SELECT i.id, ss.source_type, ss.source_id FROM images i "
                              "JOIN series_sources ss ON ss.series_id = i.series_id")
        assert [(r["source_type"], r["source_id"]) for r in images] == [("scp", row.id)]
        image_id = images[0]["id"]
        sent = pydicom.dcmread(path)
        assert pydicom.dcmread(box.storage.path(image_id)).PixelData == sent.PixelData

        # Orthanc forgets it; the box sends it back
        assert in_netns(pid, http, HTTP_PORT, "DELETE", f"/instances/{orthanc_id}")[0] == 200
        assert json.loads(in_netns(pid, http, HTTP_PORT, "GET", "/instances")[1]) == []
        scu = scus.add_scu(box, "orthanc", "ORTHANC", "127.0.0.1", DICOM_PORT)
        result = in_netns(pid, scus.send_images, box, scu.id, [image_id])
        assert result.sent == (image_id,)
        (back,) = json.loads(in_netns(pid, http, HTTP_PORT, "GET", "/instances")[1])
        status, data = in_netns(pid, http, HTTP_PORT, "GET", f"/instances/{back}/file")
        assert status == 200
        returned = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
        assert (returned.SOPInstanceUID, returned.PixelData) == (sent.SOPInstanceUID, sent.PixelData)
    finally:
        listener.stop()
