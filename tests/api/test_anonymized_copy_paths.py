"""POST /images/{id}/anonymized answers small datasets from memory and large ones from a
temporary file; both ways must give the same bytes, record the same key and leave no file behind.
"""
from __future__ import annotations

import io
import os

import pydicom
import pytest
from factories import make_dicom_bytes

from slicebox.services import image_anonymization

BODY = {"profile": {"options": []}, "tagValues": []}
KEYS = "/api/anonymization/keys"


def _temp_files(services) -> list[str]:
    return sorted(os.listdir(services.storage.temp_dir()))


@pytest.mark.parametrize("limit", [image_anonymization.IN_MEMORY_LIMIT, 0], ids=["memory", "temp-file"])
def test_anonymized_copy_is_the_same_from_memory_and_from_a_temp_file(client, upload, services,
                                                                      monkeypatch, limit):
    image = upload(make_dicom_bytes(PatientName="Mem^Pat", PatientID="MEM1", AccessionNumber="ACC77",
                                    StudyInstanceUID="1.2.3.77", SeriesInstanceUID="1.2.3.77.1",
                                    SOPInstanceUID="1.2.3.77.1.1")).get_json()
    before = _temp_files(services)
    first = client.post(f"/api/images/{image['id']}/anonymized", json=BODY)
    assert first.status_code == 200
    monkeypatch.setattr(image_anonymization, "IN_MEMORY_LIMIT", limit)
    second = client.post(f"/api/images/{image['id']}/anonymized", json=BODY)
    assert second.status_code == 200
    # Pseudonyms are stable, so the two copies are byte for byte the same.
    assert second.get_data() == first.get_data()
    assert int(second.headers["Content-Length"]) == len(first.get_data())
    ds = pydicom.dcmread(io.BytesIO(second.get_data()))
    assert ds.PatientIdentityRemoved == "YES"
    assert str(ds.PatientName) != "Mem^Pat" and ds.SOPInstanceUID != "1.2.3.77.1.1"
    assert "AccessionNumber" not in ds or ds.AccessionNumber == ""
    # One key per request, with the same values each time.
    keys = client.get(KEYS, query_string={"count": 100}).get_json()
    assert len(keys) == 2
    assert {k["anonSOPInstanceUID"] for k in keys} == {ds.SOPInstanceUID}
    values = [client.get(f"{KEYS}/{k['id']}/keyvalues").get_json() for k in keys]
    strip = [sorted((v["tagPath"]["tag"], v["value"], v["anonymizedValue"]) for v in vs) for vs in values]
    assert strip[0] == strip[1]
    assert (0x00080050, "ACC77", "") in strip[0]
    assert _temp_files(services) == before


def test_already_anonymous_data_is_anonymized_from_memory_too(client, upload):
    data = make_dicom_bytes(PatientName="Anon^Already", PatientID="A1", PatientIdentityRemoved="YES")
    image = upload(data).get_json()
    r = client.post(f"/api/images/{image['id']}/anonymized", json=BODY)
    assert r.status_code == 200
    assert b"Anon^Already" not in r.get_data()
    assert len(client.get(KEYS).get_json()) == 1


def test_anonymized_copy_of_a_deleted_image_is_404(client, upload):
    image = upload(make_dicom_bytes(PatientName="Gone^Pat")).get_json()
    assert client.delete(f"/api/images/{image['id']}").status_code == 204
    r = client.post(f"/api/images/{image['id']}/anonymized", json=BODY)
    assert r.status_code == 404
