"""Issue 4, "Done when" 2: pseudonym consistency, reference remapping, keys, pass-through,
reverse anonymization (round trip) and input errors, all through ``POST /images/{id}/anonymized``.
"""
from __future__ import annotations

import io
import threading

import pydicom
import pytest
from factories import make_dataset, make_dicom_bytes
from helpers import ADMIN, AuthClient
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid

from anon_planting import plant, planted_values

KEYS = "/api/anonymization/keys"


def anonymize(client, image_id: int, options=(), tag_values=()):
    body = {"profile": {"options": [{"name": n} for n in options]},
            "tagValues": [{"tagPath": {"tag": t}, "value": v} for t, v in tag_values]}
    return client.post(f"/api/images/{image_id}/anonymized", json=body)


def anonymized(client, image_id: int, options=(), tag_values=()) -> tuple[bytes, pydicom.Dataset]:
    r = anonymize(client, image_id, options, tag_values)
    assert r.status_code == 200, r.get_data(as_text=True)
    data = r.get_data()
    return data, pydicom.dcmread(io.BytesIO(data))


def stored(upload, **tags) -> dict:
    r = upload(**tags)
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def keys(client) -> list[dict]:
    r = client.get(KEYS, query_string={"count": 10000})
    assert r.status_code == 200
    return r.get_json()


def names(client, level: str, prop: str) -> list[str]:
    return sorted(row[prop]["value"] for row in client.get(f"/api/metadata/{level}").get_json())


# -- pseudonyms ------------------------------------------------------------------------
def test_same_patient_gets_the_same_pseudonym_across_images_and_requests(client, upload):
    a = stored(upload, PatientName="Same^Pat", PatientID="SAME1", StudyInstanceUID="1.2.3.100",
               SeriesInstanceUID="1.2.3.100.1")
    b = stored(upload, PatientName="Same^Pat", PatientID="SAME1", StudyInstanceUID="1.2.3.100",
               SeriesInstanceUID="1.2.3.100.2")
    c = stored(upload, PatientName="Same^Pat", PatientID="SAME1", StudyInstanceUID="1.2.3.101",
               SeriesInstanceUID="1.2.3.101.1")
    other = stored(upload, PatientName="Other^Pat", PatientID="OTHER1", StudyInstanceUID="1.2.3.102",
                   SeriesInstanceUID="1.2.3.102.1")
    _, oa = anonymized(client, a["id"])
    _, ob = anonymized(client, b["id"])
    _, oc = anonymized(client, c["id"])
    _, oa_again = anonymized(client, a["id"])
    _, oo = anonymized(client, other["id"])
    assert oa.PatientName == ob.PatientName == oc.PatientName == oa_again.PatientName
    assert oa.PatientID == ob.PatientID == oc.PatientID == oa_again.PatientID
    assert str(oa.PatientName) != "Same^Pat" and oa.PatientID != "SAME1"
    assert oo.PatientName != oa.PatientName and oo.PatientID != oa.PatientID
    # same study -> same anonymous study UID; another study or series -> another UID
    assert oa.StudyInstanceUID == ob.StudyInstanceUID != oc.StudyInstanceUID
    assert oa.SeriesInstanceUID != ob.SeriesInstanceUID
    assert oa.SOPInstanceUID == oa_again.SOPInstanceUID != ob.SOPInstanceUID
    assert oa.StudyInstanceUID != "1.2.3.100"


def test_parallel_anonymization_of_one_patient_agrees_on_one_pseudonym(app, client, upload):
    ids = [stored(upload, PatientName="Parallel^Pat", PatientID="PAR1", StudyInstanceUID="1.2.3.200",
                  SeriesInstanceUID="1.2.3.200.1", rows=2, columns=2)["id"] for _ in range(100)]
    results: dict[int, pydicom.Dataset] = {}
    errors: list = []
    queue = list(ids)
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker():
        own = AuthClient(app.test_client(), ADMIN)  # each thread its own client
        barrier.wait()
        while True:
            with lock:
                if not queue:
                    return
                image_id = queue.pop()
            try:
                r = anonymize(own, image_id)
                if r.status_code != 200:
                    errors.append((image_id, r.status_code, r.get_data(as_text=True)))
                    continue
                results[image_id] = pydicom.dcmread(io.BytesIO(r.get_data()))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append((image_id, repr(exc)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    assert len(results) == 100
    assert len({str(ds.PatientName) for ds in results.values()}) == 1
    assert len({ds.PatientID for ds in results.values()}) == 1
    assert len({ds.StudyInstanceUID for ds in results.values()}) == 1
    assert len({ds.SeriesInstanceUID for ds in results.values()}) == 1
    assert len({ds.SOPInstanceUID for ds in results.values()}) == 100
    recorded = keys(client)
    assert len(recorded) == 100
    assert {k["anonPatientID"] for k in recorded} == {next(iter(results.values())).PatientID}
    assert {k["anonStudyInstanceUID"] for k in recorded} == {next(iter(results.values())).StudyInstanceUID}


# -- references ------------------------------------------------------------------------
def test_references_point_to_the_anonymized_image(client, upload):
    ref_uid = generate_uid()
    a = stored(upload, SOPInstanceUID=ref_uid, PatientName="Ref^Pat", PatientID="REF1")
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = ref_uid
    nested = Dataset()
    nested.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    nested.ReferencedSOPInstanceUID = ref_uid
    item.ReferencedImageSequence = Sequence([nested])  # depth 2
    ds = make_dataset(PatientName="Ref^Pat", PatientID="REF1", ReferencedImageSequence=Sequence([item]),
                      SourceImageSequence=Sequence([item]))
    b = stored(upload, data=make_dicom_bytes(ds))
    # B first: the mapping must not depend on the order
    data_b, ob = anonymized(client, b["id"])
    _, oa = anonymized(client, a["id"])
    assert oa.SOPInstanceUID != ref_uid
    assert ob.ReferencedImageSequence[0].ReferencedSOPInstanceUID == oa.SOPInstanceUID
    assert ob.ReferencedImageSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID == oa.SOPInstanceUID
    assert ob.SourceImageSequence[0].ReferencedSOPInstanceUID == oa.SOPInstanceUID
    assert ob.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert ref_uid.encode() not in data_b
    assert oa.file_meta.MediaStorageSOPInstanceUID == oa.SOPInstanceUID


# -- keys and custom values ------------------------------------------------------------
def test_a_key_records_real_and_anonymous_identities(client, upload):
    image = stored(upload, PatientName="Key^Pat", PatientID="KEY1", StudyInstanceUID="1.2.3.300",
                   SeriesInstanceUID="1.2.3.300.1", AccessionNumber="ACC300")
    original = client.get(f"/api/images/{image['id']}").get_data()
    _, out = anonymized(client, image["id"])
    [key] = keys(client)
    assert key["imageId"] == image["id"]
    assert (key["patientName"], key["patientID"]) == ("Key^Pat", "KEY1")
    assert (key["anonPatientName"], key["anonPatientID"]) == (str(out.PatientName), out.PatientID)
    assert (key["studyInstanceUID"], key["anonStudyInstanceUID"]) == ("1.2.3.300", out.StudyInstanceUID)
    assert (key["seriesInstanceUID"], key["anonSeriesInstanceUID"]) == ("1.2.3.300.1", out.SeriesInstanceUID)
    assert (key["sopInstanceUID"], key["anonSOPInstanceUID"]) == (image["sopInstanceUID"]["value"],
                                                                  out.SOPInstanceUID)
    values = client.get(f"{KEYS}/{key['id']}/keyvalues").get_json()
    by_tag = {v["tagPath"]["tag"]: v for v in values}
    assert by_tag[0x00080050]["value"] == "ACC300" and by_tag[0x00080050]["anonymizedValue"] != "ACC300"
    # nothing is stored: the image is unchanged and no new image appeared
    assert client.get(f"/api/images/{image['id']}").get_data() == original
    assert len(client.get("/api/metadata/images").get_json()) == 1
    assert names(client, "patients", "patientName") == ["Key^Pat"]


def test_custom_tag_values_win_and_are_recorded_in_the_key(client, upload):
    image = stored(upload, PatientName="Custom^Pat", PatientID="CUS1", StudyDescription="Real study")
    data, out = anonymized(client, image["id"], tag_values=[(0x00100010, "Chosen^Name"),
                                                            (0x00081030, "Chosen study")])
    assert str(out.PatientName) == "Chosen^Name"
    assert out.StudyDescription == "Chosen study"
    assert b"Real study" not in data and b"Custom^Pat" not in data
    [key] = keys(client)
    assert key["anonPatientName"] == "Chosen^Name" and key["patientName"] == "Custom^Pat"
    r = client.get(f"{KEYS}/{key['id']}")
    assert r.status_code == 200 and r.get_json() == key
    values = client.get(f"{KEYS}/{key['id']}/keyvalues").get_json()
    by_tag = {v["tagPath"]["tag"]: v for v in values}
    assert (by_tag[0x00081030]["value"], by_tag[0x00081030]["anonymizedValue"]) == ("Real study", "Chosen study")


def test_already_anonymized_data_is_anonymized_anyway(client, upload):
    """Patient Identity Removed = YES is a claim, not a proof: names, dates and UIDs still go."""
    image = stored(upload, PatientName="Already^Anon", PatientID="AA1", PatientIdentityRemoved="YES",
                   DeidentificationMethod="elsewhere", StudyInstanceUID="1.2.3.177", StudyDate="20210203",
                   InstitutionName="Claimed Anonymous Hospital")
    original = client.get(f"/api/images/{image['id']}").get_data()
    data, out = anonymized(client, image["id"])
    assert data != original
    for secret in (b"Already^Anon", b"AA1", b"1.2.3.177", b"20210203", b"Claimed Anonymous", b"elsewhere"):
        assert secret not in data, secret
    assert out.PatientIdentityRemoved == "YES"
    [key] = keys(client)
    assert key["patientName"] == "Already^Anon" and key["anonPatientName"] == str(out.PatientName)


def test_own_anonymized_image_anonymized_again_keeps_its_pseudonyms(client, upload):
    """An anonymous copy stored back without its original (no re-identification: the key's image
    is gone... but the key stays) and anonymized again keeps the same pseudonyms, and the second
    copy is still re-identified to the real patient."""
    image = stored(upload, PatientName="Twice^Pat", PatientID="TW1", StudyInstanceUID="1.2.3.178",
                   SeriesInstanceUID="1.2.3.178.1")
    first, out1 = anonymized(client, image["id"])
    # store the anonymous copy as it is: in place, as a replacement (no re-identification)
    r = client.put(f"/api/images/{image['id']}/anonymize", json={"profile": {"options": []}})
    assert r.status_code in (200, 201), r.get_data(as_text=True)
    again_id = r.get_json()["id"]
    second, out2 = anonymized(client, again_id)
    assert (str(out2.PatientName), out2.PatientID) == (str(out1.PatientName), out1.PatientID)
    assert (out2.StudyInstanceUID, out2.SeriesInstanceUID, out2.SOPInstanceUID) == \
        (out1.StudyInstanceUID, out1.SeriesInstanceUID, out1.SOPInstanceUID)
    # and that copy still goes home to the real patient
    assert client.delete(f"/api/images/{again_id}").status_code == 204
    r = client.post("/api/images", data=second, content_type="application/octet-stream")
    assert r.status_code == 201, r.get_data(as_text=True)
    back = pydicom.dcmread(io.BytesIO(client.get(f"/api/images/{r.get_json()['id']}").get_data()))
    assert (str(back.PatientName), back.PatientID, back.StudyInstanceUID) == ("Twice^Pat", "TW1", "1.2.3.178")


# -- reverse anonymization -------------------------------------------------------------
def _rows(client) -> dict:
    return {level: client.get(f"/api/metadata/{level}").get_json()
            for level in ("patients", "studies", "series")}


def test_round_trip_restores_the_original_image_and_rows(client, upload):
    image = stored(upload, PatientName="Round^Trip", PatientID="RT1", StudyInstanceUID="1.2.3.400",
                   SeriesInstanceUID="1.2.3.400.1", PatientBirthDate="19500505",
                   StudyDescription="Round study", AccessionNumber="ACC400")
    before = _rows(client)
    data, out = anonymized(client, image["id"])
    assert b"Round^Trip" not in data
    r = client.post("/api/images", data=data, content_type="application/octet-stream")
    assert r.status_code == 200, r.get_data(as_text=True)
    back = r.get_json()
    assert back["id"] == image["id"] and back["seriesId"] == image["seriesId"]
    assert back["sopInstanceUID"] == image["sopInstanceUID"]
    assert _rows(client) == before  # no anonymous patient, study or series appeared
    assert names(client, "patients", "patientName") == ["Round^Trip"]


def test_round_trip_with_a_custom_patient_name(client, upload):
    image = stored(upload, PatientName="Round^Custom", PatientID="RT2", StudyInstanceUID="1.2.3.401",
                   SeriesInstanceUID="1.2.3.401.1")
    before = _rows(client)
    data, out = anonymized(client, image["id"], tag_values=[(0x00100010, "Study^Subject7")])
    assert str(out.PatientName) == "Study^Subject7"
    r = client.post("/api/images", data=data, content_type="application/octet-stream")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["id"] == image["id"]
    assert _rows(client) == before


def test_a_derived_anonymous_image_lands_on_the_original_series(client, upload):
    """An image made elsewhere from the anonymous data (new SOP Instance UID) joins the real series."""
    image = stored(upload, PatientName="Derived^Pat", PatientID="DV1", StudyInstanceUID="1.2.3.402",
                   SeriesInstanceUID="1.2.3.402.1")
    before = _rows(client)
    _, out = anonymized(client, image["id"])
    out.SOPInstanceUID = generate_uid()
    r = client.post("/api/images", data=make_dicom_bytes(out), content_type="application/octet-stream")
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json()["seriesId"] == image["seriesId"]
    assert _rows(client) == before
    stored_back = pydicom.dcmread(io.BytesIO(client.get(f"/api/images/{r.get_json()['id']}").get_data()))
    assert str(stored_back.PatientName) == "Derived^Pat" and stored_back.PatientID == "DV1"
    assert stored_back.StudyInstanceUID == "1.2.3.402" and stored_back.SeriesInstanceUID == "1.2.3.402.1"


def test_anonymous_data_without_a_matching_key_is_stored_as_it_is(client, upload):
    stored(upload, PatientName="Known^Pat", PatientID="KN1")
    r = upload(PatientName="Anon^Stranger", PatientID="STRANGER", PatientIdentityRemoved="YES",
               StudyInstanceUID="1.2.3.500", SeriesInstanceUID="1.2.3.500.1")
    assert r.status_code == 201
    ds = pydicom.dcmread(io.BytesIO(client.get(f"/api/images/{r.get_json()['id']}").get_data()))
    assert str(ds.PatientName) == "Anon^Stranger" and ds.PatientIdentityRemoved == "YES"
    assert names(client, "patients", "patientName") == ["Anon^Stranger", "Known^Pat"]


# -- errors ----------------------------------------------------------------------------
def test_unknown_image_is_404(client):
    r = anonymize(client, 424242)
    assert r.status_code == 404 and "error" in r.get_json()


def test_anonymization_needs_a_user(anon_client, upload):
    image = stored(upload)
    r = anon_client.post(f"/api/images/{image['id']}/anonymized", json={"profile": {"options": []}})
    assert r.status_code == 401


@pytest.mark.parametrize("body", [
    {"profile": {"options": [{"name": "RETAIN_EVERYTHING"}]}},
    {"profile": {"options": [{"name": 7}]}},
    {"profile": {"options": "RETAIN_UIDS"}},
    {"profile": "basic"},
    {"profile": {"options": []}, "tagValues": "PatientName=x"},
    {"profile": {"options": []}, "tagValues": [{"tagPath": 0x00100010, "value": "x"}]},
    {"profile": {"options": []}, "tagValues": [{"tagPath": {"tag": 0x00100010}}]},
    {"profile": {"options": []}, "tagValues": [{"tagPath": {"tag": 0x00100010}, "value": 5}]},
    {"profile": {"options": []}, "tagValues": [{"tagPath": {"tag": "PatientName"}, "value": "x"}]},
    {"profile": {"options": []}, "tagValues": [{"tagPath": {"tag": 0x00100010,
                                                             "previous": {"tag": 0x00081140, "item": "0"}},
                                                "value": "x"}]},
    {"profile": {"options": []}, "tagValues": [{"tagPath": {"tag": 0x12345678}, "value": "x"}]},
    {"profile": {"options": []}, "tagValues": [{"tagPath": {"tag": 0x00081140}, "value": "x"}]},
    {"profile": {"options": []}, "tagValues": [{"tagPath": {"tag": 0x00020003}, "value": "1.2.3"}]},
    {"profile": {"options": []}, "tagValues": [{"tagPath": {"tag": 0x00280010}, "value": "many"}]},
    [],
])
def test_bad_request_bodies_are_400_and_record_nothing(client, upload, body):
    image = stored(upload)
    r = client.post(f"/api/images/{image['id']}/anonymized", json=body)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["error"]
    assert keys(client) == []


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_round_trip_restores_every_planted_root_value(client, upload, transfer_syntax):
    """Planted values in every table attribute: the anonymous copy, stored after the original
    is gone, gets every real root value back (the key holds them)."""
    planted = planted_values()
    r = upload(make_dicom_bytes(plant(make_dataset()), transfer_syntax=transfer_syntax))
    assert r.status_code == 201, r.get_data(as_text=True)
    original = r.get_json()
    data, out = anonymized(client, original["id"])
    r = client.post("/api/images", data=data, content_type="application/octet-stream")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["id"] == original["id"]

    assert client.delete(f"/api/images/{original['id']}").status_code == 204
    r = client.post("/api/images", data=data, content_type="application/octet-stream")
    assert r.status_code == 201, r.get_data(as_text=True)
    restored = pydicom.dcmread(io.BytesIO(client.get(f"/api/images/{r.get_json()['id']}").get_data()))
    differ = []
    for p in planted:
        elem = restored.get(p.tag)
        value = None if elem is None else elem.value
        if isinstance(value, bytes):  # not in pydicom's dictionary: raw text
            value = value.decode("ascii", "replace")
        if value is None or str(value).strip(" \0") != p.value:
            differ.append(f"{p.tag:08X} {p.keyword}: {value!r}")
    assert not differ, f"{len(differ)} real values not restored: {differ[:10]}"
    assert "PatientIdentityRemoved" not in restored
    assert restored.file_meta.MediaStorageSOPInstanceUID == restored.SOPInstanceUID
    assert names(client, "patients", "patientName") == [planted_value(planted, "PatientName")]


def planted_value(planted, keyword: str) -> str:
    return next(p.value for p in planted if p.keyword == keyword)


def test_values_stored_with_vr_un_are_recorded_and_restored(client, upload):
    """Known text attributes stored as explicit VR UN (as in pydicom's explicit_VR-UN.dcm test file:
    Institution Name, Study Date) are recorded in the key and come back."""
    import struct

    ds = make_dataset(PatientName="Un^Known", PatientID="UN1", StudyDate="20190303",
                      InstitutionName="Saint UN Hospital")
    raw = make_dicom_bytes(ds)
    for head, value in ((b"\x08\x00\x20\x00DA\x08\x00", b"20190303"),
                        (b"\x08\x00\x80\x00LO\x12\x00", b"Saint UN Hospital ")):
        assert raw.count(head + value) == 1
        raw = raw.replace(head + value, head[:4] + b"UN\0\0" + struct.pack("<I", len(value)) + value)
    assert b"\x08\x00\x80\x00UN" in raw
    institution = "Saint UN Hospital"
    original = stored(lambda **_: upload(raw))
    data, _out = anonymized(client, original["id"])
    [key] = keys(client)
    values = {v["tagPath"]["tag"]: v for v in client.get(f"{KEYS}/{key['id']}/keyvalues").get_json()}
    institution = str(ds.InstitutionName)
    assert values[0x00080080]["value"] == institution and values[0x00080020]["value"] == "20190303"
    assert institution.encode() not in data
    assert client.delete(f"/api/images/{original['id']}").status_code == 204
    r = client.post("/api/images", data=data, content_type="application/octet-stream")
    assert r.status_code == 201, r.get_data(as_text=True)
    back = pydicom.dcmread(io.BytesIO(client.get(f"/api/images/{r.get_json()['id']}").get_data()))
    assert back.InstitutionName == institution and back.StudyDate == "20190303"


# PS3.5 H.3.1: a Korean name in ISO 2022 IR 149, each component group and component re-designated
KOREAN_NAME = "Hong^Gildong=洪^吉洞=홍^길동"
KOREAN_BYTES = (b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^"
                b"\x1b$)C\xb1\xe6\xb5\xbf")


def _raw_value(data: bytes, tag: int) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    return ds[tag].value.original_string if tag == 0x00100010 else ds.get_item(tag).value


def test_reidentification_restores_iso_2022_names_in_their_original_bytes(client, upload):
    ds = make_dataset(PatientID="KR1", SpecificCharacterSet=["", "ISO 2022 IR 149"])
    ds.PatientName = KOREAN_NAME
    ds.ReferringPhysicianName = KOREAN_NAME
    raw = make_dicom_bytes(ds)
    assert KOREAN_BYTES in raw
    original = stored(lambda **_: upload(raw))
    data, _out = anonymized(client, original["id"])
    assert b"\xfb\xf3" not in data and b"Hong" not in data
    assert client.delete(f"/api/images/{original['id']}").status_code == 204
    r = client.post("/api/images", data=data, content_type="application/octet-stream")
    assert r.status_code == 201, r.get_data(as_text=True)
    back = client.get(f"/api/images/{r.get_json()['id']}").get_data()
    assert _raw_value(back, 0x00100010).rstrip(b" ") == KOREAN_BYTES
    restored = pydicom.dcmread(io.BytesIO(back))
    assert str(restored.PatientName) == KOREAN_NAME and str(restored.ReferringPhysicianName) == KOREAN_NAME
    assert names(client, "patients", "patientName") == [KOREAN_NAME]
    # dcmtk converts the restored file to UTF-8 (it refused the misplaced escape sequences)
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.dcm"), os.path.join(tmp, "out.dcm")
        with open(src, "wb") as fh:
            fh.write(back)
        run = subprocess.run(["/usr/bin/dcmconv", "+U8", src, dst], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and "rror" not in run.stderr, run.stderr
        assert str(pydicom.dcmread(dst).PatientName) == KOREAN_NAME
