"""Tag filters: a whitelist and a blacklist seen in the stored bytes; the filter and association routes."""
from __future__ import annotations

import io

import pydicom
from factories import make_dataset, make_dicom_bytes
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence


def _admin_id(client) -> int:
    return next(u["id"] for u in client.get("/api/users").get_json() if u["user"] == "admin")


def _dataset():
    first, second = Dataset(), Dataset()
    first.PatientName, first.CodeValue = "Nested^First", "C1"
    second.PatientName, second.CodeValue = "Nested^Second", "C2"
    ds = make_dataset(PatientName="Real^Name", PatientID="PID-F", OtherPatientIDs="OTHER-1")
    ds.ReferencedSeriesSequence = Sequence([first, second])
    return ds


def _filter(client, name, kind, paths) -> dict:
    r = client.post("/api/filtering/filters", json={"name": name, "tagFilterType": kind})
    assert r.status_code == 201, r.get_json()
    f = r.get_json()
    for p in paths:
        r = client.post(f"/api/filtering/filters/{f['id']}/tagpaths", json=p)
        assert r.status_code == 201, r.get_json()
    return f


def _associate(client, filter_id) -> dict:
    r = client.post("/api/filtering/associations",
                    json={"sourceType": "user", "sourceId": _admin_id(client), "tagFilterId": filter_id})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _stored(client, upload, ds) -> tuple[dict, pydicom.Dataset]:
    original_pixels = ds.PixelData
    r = upload(make_dicom_bytes(ds))
    assert r.status_code == 201, r.get_json()
    image = r.get_json()
    raw = client.get(f"/api/images/{image['id']}")
    assert raw.status_code == 200
    stored = pydicom.dcmread(io.BytesIO(raw.data))
    assert stored.PixelData == original_pixels
    return image, stored


def test_whitelist_keeps_listed_paths_and_what_storage_needs(client, upload):
    f = _filter(client, "keep-few", "WHITELIST", [
        {"tag": 0x00100020},  # PatientID
        {"tag": 0x00080100, "previous": {"tag": 0x00081115, "item": "*"}},  # CodeValue in every item
    ])
    assoc = _associate(client, f["id"])
    assert assoc["sourceType"] == "user" and assoc["sourceName"] == "admin" and assoc["tagFilterName"] == "keep-few"
    ds = _dataset()
    image, stored = _stored(client, upload, ds)
    assert stored.PatientID == "PID-F"
    for gone in ("PatientName", "OtherPatientIDs", "StudyDescription", "Modality", "PatientBirthDate",
                 "RescaleSlope"):
        assert gone not in stored, gone
    # what storage needs stays: UIDs, pixel module, file meta
    assert stored.SOPInstanceUID == ds.SOPInstanceUID == stored.file_meta.MediaStorageSOPInstanceUID
    assert stored.StudyInstanceUID == ds.StudyInstanceUID and stored.SeriesInstanceUID == ds.SeriesInstanceUID
    assert (stored.Rows, stored.Columns, stored.BitsAllocated, stored.PhotometricInterpretation) == \
        (8, 8, 16, "MONOCHROME2")
    items = stored.ReferencedSeriesSequence
    assert [i.CodeValue for i in items] == ["C1", "C2"]
    assert all("PatientName" not in i for i in items)
    # the index saw the filtered data
    series = client.get(f"/api/metadata/series/{image['seriesId']}").get_json()
    study = client.get(f"/api/metadata/studies/{series['studyId']}").get_json()
    patient = client.get(f"/api/metadata/patients/{study['patientId']}").get_json()
    assert patient["patientName"]["value"] == "" and patient["patientID"]["value"] == "PID-F"


def test_blacklist_removes_listed_paths_everywhere_the_wildcard_reaches(client, upload):
    f = _filter(client, "drop-some", "BLACKLIST", [
        {"tag": 0x00101000},  # OtherPatientIDs
        {"tag": 0x00100010, "previous": {"tag": 0x00081115, "item": "*"}},  # nested names only
        {"tag": 0x00080018},  # SOP Instance UID: storage needs it, never removed
    ])
    _associate(client, f["id"])
    ds = _dataset()
    _, stored = _stored(client, upload, ds)
    assert "OtherPatientIDs" not in stored
    assert stored.PatientName == "Real^Name"  # root name is not in the list
    assert [i.CodeValue for i in stored.ReferencedSeriesSequence] == ["C1", "C2"]
    assert all("PatientName" not in i for i in stored.ReferencedSeriesSequence)
    assert stored.SOPInstanceUID == ds.SOPInstanceUID
    assert stored.StudyDescription == "Test study"


def test_blacklist_of_one_item_only(client, upload):
    f = _filter(client, "second-item", "BLACKLIST",
                [{"tag": 0x00100010, "previous": {"tag": 0x00081115, "item": "2"}}])
    _associate(client, f["id"])
    _, stored = _stored(client, upload, _dataset())
    items = stored.ReferencedSeriesSequence
    assert items[0].PatientName == "Nested^First" and "PatientName" not in items[1]


def test_other_sources_and_deleted_filters_are_not_filtered(client, upload, user_client):
    f = _filter(client, "strict", "WHITELIST", [{"tag": 0x00100020}])
    _associate(client, f["id"])
    # alice's uploads have another source: untouched
    r = user_client.post("/api/images", data=make_dicom_bytes(_dataset()), content_type="application/octet-stream")
    assert r.status_code == 201
    stored = pydicom.dcmread(io.BytesIO(client.get(f"/api/images/{r.get_json()['id']}").data))
    assert stored.PatientName == "Real^Name"
    # deleting the filter deletes its association
    assert client.delete(f"/api/filtering/filters/{f['id']}").status_code == 204
    assert client.get("/api/filtering/associations").get_json() == []
    _, stored = _stored(client, upload, _dataset())
    assert stored.PatientName == "Real^Name"


def test_filter_routes(client, user_client):
    f = _filter(client, "f1", "BLACKLIST", [{"tag": 0x00100010}])
    # upsert by name: the type changes, the same filter; tags given replace the paths
    r = client.post("/api/filtering/filters", json={"name": "f1", "tagFilterType": "WHITELIST",
                                                     "tags": [{"tag": 0x00100020}]})
    assert r.status_code == 201 and r.get_json()["id"] == f["id"]
    assert r.get_json()["tagFilterType"] == "WHITELIST" and r.get_json()["tags"] == [{"tag": 0x00100020}]
    paths = client.get(f"/api/filtering/filters/{f['id']}/tagpaths").get_json()
    assert [p["tag"] for p in paths] == [0x00100020]
    assert client.delete(f"/api/filtering/filters/{f['id']}/tagpaths/{paths[0]['id']}").status_code == 204
    assert client.get(f"/api/filtering/filters/{f['id']}/tagpaths").get_json() == []
    assert [x["name"] for x in client.get("/api/filtering/filters").get_json()] == ["f1"]
    # bad input
    assert client.post("/api/filtering/filters", json={"name": "x", "tagFilterType": "GREYLIST"}).status_code == 400
    assert client.post("/api/filtering/filters", json={"name": "", "tagFilterType": "WHITELIST"}).status_code == 400
    assert client.post(f"/api/filtering/filters/{f['id']}/tagpaths", json={"tag": "x"}).status_code == 400
    assert client.post(f"/api/filtering/filters/{f['id']}/tagpaths",
                       json={"tag": 1, "previous": {"tag": 0x00081115, "item": "0"}}).status_code == 400
    assert client.post("/api/filtering/filters/999/tagpaths", json={"tag": 0x00100010}).status_code == 404
    assert client.post("/api/filtering/associations",
                       json={"sourceType": "user", "sourceId": 999, "tagFilterId": f["id"]}).status_code == 404
    assert client.post("/api/filtering/associations",
                       json={"sourceType": "moon", "sourceId": 1, "tagFilterId": f["id"]}).status_code == 400
    assert client.post("/api/filtering/associations",
                       json={"sourceType": "user", "sourceId": _admin_id(client), "tagFilterId": 999}).status_code == 404
    # one filter per source: a second association replaces the first
    g = _filter(client, "f2", "BLACKLIST", [])
    a1 = _associate(client, f["id"])
    a2 = _associate(client, g["id"])
    assert a1["id"] == a2["id"] and a2["tagFilterId"] == g["id"]
    assert [a["tagFilterId"] for a in client.get("/api/filtering/associations").get_json()] == [g["id"]]
    # users read, only administrators change
    assert user_client.get("/api/filtering/filters").status_code == 200
    assert user_client.post("/api/filtering/filters", json={"name": "u", "tagFilterType": "WHITELIST"}).status_code == 403
    assert user_client.delete(f"/api/filtering/associations/{a2['id']}").status_code == 403
    assert client.delete(f"/api/filtering/associations/{a2['id']}").status_code == 204
    assert client.get("/api/filtering/associations").get_json() == []
