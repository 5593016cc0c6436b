"""PUT /images/{id}/anonymize and POST /anonymization/anonymize: replace images by anonymized ones."""
import io

import pydicom
from factories import make_dicom_bytes


def _dataset(client, image_id):
    r = client.get(f"/api/images/{image_id}")
    assert r.status_code == 200
    return pydicom.dcmread(io.BytesIO(r.data))


def test_put_anonymize_replaces_the_image(client, upload):
    real = upload(PatientName="Real^Name", PatientID="RID1").get_json()
    client.post(f"/api/metadata/series/{real['seriesId']}/seriestags", json={"name": "keep-me"})
    r = client.put(f"/api/images/{real['id']}/anonymize", json={"profile": {"options": []}, "tagValues": []})
    assert r.status_code == 200, r.get_json()
    new = r.get_json()
    assert new["id"] != real["id"]
    assert client.get(f"/api/images/{real['id']}").status_code == 404
    ds = _dataset(client, new["id"])
    assert ds.PatientIdentityRemoved == "YES"
    assert str(ds.PatientName) != "Real^Name" and ds.PatientID != "RID1"
    patients = client.get("/api/metadata/patients").get_json()
    assert [p["patientName"]["value"] for p in patients] == [str(ds.PatientName)]
    tags = client.get(f"/api/metadata/series/{new['seriesId']}/seriestags").get_json()
    assert [t["name"] for t in tags] == ["keep-me"]
    keys = client.get("/api/anonymization/keys").get_json()
    assert len(keys) == 1 and keys[0]["patientName"] == "Real^Name"


def test_put_anonymize_anonymizes_already_anonymous_data_again(client, upload):
    first = upload(PatientName="Real^Name").get_json()
    once = client.put(f"/api/images/{first['id']}/anonymize", json={}).get_json()
    name_once = str(_dataset(client, once["id"]).PatientName)
    twice = client.put(f"/api/images/{once['id']}/anonymize", json={})
    assert twice.status_code == 200
    # anonymized again (a new image), keeping this box's own pseudonym (issue 16), and its key
    # still leads to the real patient
    assert twice.get_json()["id"] != once["id"]
    assert str(_dataset(client, twice.get_json()["id"]).PatientName) == name_once
    keys = client.get("/api/anonymization/keys").get_json()
    assert len(keys) == 2 and {k["patientName"] for k in keys} == {"Real^Name"}


def test_put_anonymize_errors(client, upload):
    image = upload().get_json()
    assert client.put("/api/images/999/anonymize", json={}).status_code == 404
    bad = client.put(f"/api/images/{image['id']}/anonymize", json={"profile": {"options": [{"name": "NOPE"}]}})
    assert bad.status_code == 400
    assert client.put(f"/api/images/{image['id']}/anonymize", json={"tagValues": "x"}).status_code == 400
    assert client.get(f"/api/images/{image['id']}").status_code == 200  # untouched


def test_bulk_anonymize_with_spec_array_body(client, upload):
    a = upload(PatientName="Bulk^One", PatientID="B1").get_json()
    b = upload(PatientName="Bulk^One", PatientID="B1").get_json()
    body = [{"imageId": a["id"], "tagValues": [{"tagPath": {"tag": 0x00100010}, "value": "Chosen^Name"}]},
            {"imageId": b["id"], "tagValues": [{"tagPath": {"tag": 0x00100010}, "value": "Chosen^Name"}]},
            {"imageId": 4242, "tagValues": []}]
    r = client.post("/api/anonymization/anonymize", json=body)
    assert r.status_code == 200, r.get_json()
    images = r.get_json()
    assert len(images) == 2
    names = {str(_dataset(client, i["id"]).PatientName) for i in images}
    assert names == {"Chosen^Name"}
    studies = {_dataset(client, i["id"]).StudyInstanceUID for i in images}
    assert len(studies) == 1  # one real study, one anonymous study


def test_bulk_anonymize_rejects_bad_body_before_touching_anything(client, upload):
    a = upload().get_json()
    r = client.post("/api/anonymization/anonymize", json=[{"imageId": a["id"]}, {"imageId": "x"}])
    assert r.status_code == 400
    assert client.get(f"/api/images/{a['id']}").status_code == 200
    assert client.get("/api/anonymization/keys").get_json() == []


def test_anonymized_data_uploaded_back_after_in_place_anonymization_is_reidentified(client, upload):
    real_bytes = make_dicom_bytes(PatientName="Round^Trip", PatientID="RT1")
    real = upload(real_bytes).get_json()
    copy = client.post(f"/api/images/{real['id']}/anonymized", json={})
    assert copy.status_code == 200
    back = client.post("/api/images", data=copy.data, content_type="application/octet-stream")
    assert back.status_code == 200
    assert back.get_json()["id"] == real["id"]
