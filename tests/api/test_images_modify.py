"""PUT /images/{id}/modify: tag path -> value, stored as a new image replacing the old one."""
import io
import os
import threading

import pydicom
import pytest
from factories import make_dataset, make_dicom_bytes
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

PATIENT_NAME = 0x00100010
REF_IMAGE_SEQ = 0x00081140
REF_SOP_INSTANCE_UID = 0x00081155
REF_SOP_CLASS_UID = 0x00081150


def tp(tag, *trunk):
    """A tagPathTag JSON: ``tp(leaf, (seq, "1"), (inner_seq, "*"))`` from the root inwards."""
    previous = None
    for seq, item in trunk:
        step = {"tag": seq, "item": item}
        if previous is not None:
            step["previous"] = previous
        previous = step
    out = {"tag": tag}
    if previous is not None:
        out["previous"] = previous
    return out


def modify(client, image_id, mappings):
    return client.put(f"/api/images/{image_id}/modify", json=mappings)


def read(data: bytes):
    return pydicom.dcmread(io.BytesIO(data))


def without(ds, *tags):
    """The dataset as {tag: element} without ``tags`` (file meta excluded)."""
    return {el.tag: el for el in ds if el.tag not in {Tag(t) for t in tags}}


def with_references(n=2, **tags):
    items = []
    for i in range(n):
        item = Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.100.{i + 1}"
        items.append(item)
    return make_dataset(ReferencedImageSequence=Sequence(items), **tags)


@pytest.fixture
def stored(upload):
    """Upload a dataset; return (image json, original bytes)."""

    def do(ds=None, **tags):
        data = make_dicom_bytes(ds, **tags) if ds is not None else make_dicom_bytes(**tags)
        r = upload(data)
        assert r.status_code == 201, r.get_json()
        return r.get_json(), data

    return do


def image_count(services):
    with services.db.connection() as conn:
        return conn.scalar("SELECT COUNT(*) FROM images")


def assert_untouched(client, services, image, data):
    got = client.get(f"/api/images/{image['id']}")
    assert got.status_code == 200
    assert got.data == data
    assert image_count(services) == 1
    assert os.listdir(services.storage.temp_dir()) == []


# -- the main case ---------------------------------------------------------------------

def test_modify_patient_name_makes_new_image_and_keeps_everything_else(client, services, stored):
    image, data = stored()
    series_id = image["seriesId"]
    tag = client.post(f"/api/metadata/series/{series_id}/seriestags", json={"name": "Research"})
    assert tag.status_code == 201
    source_before = client.get(f"/api/metadata/series/{series_id}/source").get_json()

    r = modify(client, image["id"], [{"tagPath": tp(PATIENT_NAME), "value": "Smith^Jane"}])
    assert r.status_code == 201, r.get_json()
    new = r.get_json()
    assert new["id"] != image["id"]
    assert new["sopInstanceUID"] == image["sopInstanceUID"]

    assert client.get(f"/api/images/{image['id']}").status_code == 404
    assert client.get(f"/api/metadata/images/{image['id']}").status_code == 404
    got = client.get(f"/api/images/{new['id']}")
    assert got.status_code == 200
    before, after = read(data), read(got.data)
    assert after.PatientName == "Smith^Jane"
    assert without(after, PATIENT_NAME) == without(before, PATIENT_NAME)
    assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
    assert after.file_meta.MediaStorageSOPInstanceUID == before.SOPInstanceUID

    # The hierarchy reflects the change; the emptied old patient is gone.
    patients = client.get("/api/metadata/patients").get_json()
    assert [p["patientName"]["value"] for p in patients] == ["Smith^Jane"]
    new_series_id = client.get(f"/api/metadata/images/{new['id']}").get_json()["seriesId"]
    assert new_series_id == new["seriesId"]
    series = client.get(f"/api/metadata/series/{new_series_id}").get_json()
    study = client.get(f"/api/metadata/studies/{series['studyId']}").get_json()
    assert study["patientId"] == patients[0]["id"]

    # Series tags and source carried over to the new series.
    tags = client.get(f"/api/metadata/series/{new_series_id}/seriestags").get_json()
    assert [t["name"] for t in tags] == ["Research"]
    assert client.get(f"/api/metadata/series/{new_series_id}/source").get_json() == source_before
    assert image_count(services) == 1
    assert os.listdir(services.storage.temp_dir()) == []


def test_modify_without_identity_change_in_shared_series(client, services, stored):
    """Same SOP Instance UID, series with a second image: the series survives and is the same."""
    first, _ = stored()
    second, data = stored()
    assert first["seriesId"] == second["seriesId"]
    r = modify(client, second["id"], [{"tagPath": tp(0x00081030), "value": "New study text"}])
    assert r.status_code == 201, r.get_json()
    new = r.get_json()
    assert new["seriesId"] == second["seriesId"]
    assert new["sopInstanceUID"] == second["sopInstanceUID"]
    assert client.get(f"/api/images/{second['id']}").status_code == 404
    assert read(client.get(f"/api/images/{new['id']}").data).StudyDescription == "New study text"
    assert client.get(f"/api/images/{first['id']}").status_code == 200
    assert image_count(services) == 2


def test_modify_twice_in_a_row(client, stored):
    image, _ = stored()
    a = modify(client, image["id"], [{"tagPath": tp(0x00101010), "value": "033Y"}]).get_json()
    b = modify(client, a["id"], [{"tagPath": tp(0x00101010), "value": "034Y"}])
    assert b.status_code == 201
    assert read(client.get(f"/api/images/{b.get_json()['id']}").data).PatientAge == "034Y"


# -- sequences, inserts, wildcards, several values --------------------------------------

def test_modify_value_inside_second_sequence_item(client, stored):
    image, data = stored(with_references(2))
    r = modify(client, image["id"], [{
        "tagPath": tp(REF_SOP_INSTANCE_UID, (REF_IMAGE_SEQ, "2")),
        "value": "1.2.3.4.5",
    }])
    assert r.status_code == 201, r.get_json()
    before, after = read(data), read(client.get(f"/api/images/{r.get_json()['id']}").data)
    items = after.ReferencedImageSequence
    assert [i.ReferencedSOPInstanceUID for i in items] == [
        before.ReferencedImageSequence[0].ReferencedSOPInstanceUID, "1.2.3.4.5"]
    assert items[1].ReferencedSOPClassUID == before.ReferencedImageSequence[1].ReferencedSOPClassUID
    assert without(after, REF_IMAGE_SEQ) == without(before, REF_IMAGE_SEQ)


def test_wildcard_item_changes_every_item(client, stored):
    image, _ = stored(with_references(3))
    r = modify(client, image["id"], [{
        "tagPath": tp(REF_SOP_CLASS_UID, (REF_IMAGE_SEQ, "*")),
        "value": "1.2.840.10008.5.1.4.1.1.4",
    }])
    assert r.status_code == 201, r.get_json()
    items = read(client.get(f"/api/images/{r.get_json()['id']}").data).ReferencedImageSequence
    assert [i.ReferencedSOPClassUID for i in items] == ["1.2.840.10008.5.1.4.1.1.4"] * 3
    assert len({i.ReferencedSOPInstanceUID for i in items}) == 3


def test_insert_new_attribute_at_root_and_in_item(client, stored):
    image, data = stored(with_references(2))
    r = modify(client, image["id"], [
        {"tagPath": tp(0x00081090), "value": "Scanner 3000"},          # ManufacturerModelName
        {"tagPath": tp(0x00081160, (REF_IMAGE_SEQ, "1")), "value": "1\\2"},  # ReferencedFrameNumber
        {"tagPath": tp(0x00280030), "value": "0.5\\0.5"},               # PixelSpacing
        {"tagPath": tp(0x00181164), "value": "0.25\\0.25"},             # ImagerPixelSpacing
    ])
    assert r.status_code == 201, r.get_json()
    before, after = read(data), read(client.get(f"/api/images/{r.get_json()['id']}").data)
    assert after.ManufacturerModelName == "Scanner 3000"
    assert [int(v) for v in after.ReferencedImageSequence[0].ReferencedFrameNumber] == [1, 2]
    assert "ReferencedFrameNumber" not in after.ReferencedImageSequence[1]
    assert [float(v) for v in after.PixelSpacing] == [0.5, 0.5]
    added = (0x00081090, 0x00280030, 0x00181164, REF_IMAGE_SEQ)
    assert without(after, *added) == without(before, *added)


def test_binary_numeric_values_are_encoded_per_vr(client, stored):
    image, data = stored()
    r = modify(client, image["id"], [
        {"tagPath": tp(0x00280106), "value": "3"},       # SmallestImagePixelValue (US or SS)
        {"tagPath": tp(0x00281050), "value": "40"},      # WindowCenter (DS)
        {"tagPath": tp(0x00180088), "value": "1.25"},    # SpacingBetweenSlices (DS)
    ])
    assert r.status_code == 201, r.get_json()
    after = read(client.get(f"/api/images/{r.get_json()['id']}").data)
    assert after.SmallestImagePixelValue == 3
    assert float(after.WindowCenter) == 40.0
    assert (after.Rows, after.Columns) == (8, 8)
    assert after.PixelData == read(data).PixelData


def test_us_or_ss_attribute_follows_pixel_representation(client, stored):
    image, _ = stored(PixelRepresentation=1)
    r = modify(client, image["id"], [{"tagPath": tp(0x00280106), "value": "-5"}])
    assert r.status_code == 201, r.get_json()
    after = read(client.get(f"/api/images/{r.get_json()['id']}").data)
    assert after["SmallestImagePixelValue"].VR == "SS"
    assert after.SmallestImagePixelValue == -5


def test_modify_rows_us_value(client, stored):
    image, data = stored()
    r = modify(client, image["id"], [{"tagPath": tp(0x00280010), "value": "8"}])  # same value
    assert r.status_code == 201
    after = read(client.get(f"/api/images/{r.get_json()['id']}").data)
    assert after.Rows == 8 and after["Rows"].VR == "US"


def test_later_mapping_of_same_element_wins(client, stored):
    image, _ = stored(with_references(2))
    r = modify(client, image["id"], [
        {"tagPath": tp(REF_SOP_INSTANCE_UID, (REF_IMAGE_SEQ, "*")), "value": "1.1"},
        {"tagPath": tp(REF_SOP_INSTANCE_UID, (REF_IMAGE_SEQ, "2")), "value": "2.2"},
    ])
    assert r.status_code == 201, r.get_json()
    items = read(client.get(f"/api/images/{r.get_json()['id']}").data).ReferencedImageSequence
    assert [i.ReferencedSOPInstanceUID for i in items] == ["1.1", "2.2"]


def test_non_ascii_name_with_character_set(client, stored):
    image, _ = stored(SpecificCharacterSet="ISO_IR 100")
    r = modify(client, image["id"], [{"tagPath": tp(PATIENT_NAME), "value": "Müller^Åsa"}])
    assert r.status_code == 201, r.get_json()
    after = read(client.get(f"/api/images/{r.get_json()['id']}").data)
    assert after.PatientName == "Müller^Åsa"
    patients = client.get("/api/metadata/patients").get_json()
    assert [p["patientName"]["value"] for p in patients] == ["Müller^Åsa"]


def test_non_ascii_name_with_new_character_set_in_same_request(client, stored):
    image, _ = stored()
    r = modify(client, image["id"], [
        {"tagPath": tp(PATIENT_NAME), "value": "山田^太郎"},
        {"tagPath": tp(0x00080005), "value": "ISO_IR 192"},
    ])
    assert r.status_code == 201, r.get_json()
    after = read(client.get(f"/api/images/{r.get_json()['id']}").data)
    assert after.PatientName == "山田^太郎"


def test_changing_sop_instance_uid_updates_file_meta(client, stored):
    image, _ = stored()
    r = modify(client, image["id"], [{"tagPath": tp(0x00080018), "value": "1.2.826.0.1.3680043.8.498.999"}])
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["sopInstanceUID"]["value"] == "1.2.826.0.1.3680043.8.498.999"
    after = read(client.get(f"/api/images/{r.get_json()['id']}").data)
    assert after.file_meta.MediaStorageSOPInstanceUID == "1.2.826.0.1.3680043.8.498.999"


# -- errors leave the original untouched -------------------------------------------------

@pytest.mark.parametrize("body, needle", [
    ([], "empty"),
    ({"tagPath": {"tag": PATIENT_NAME}, "value": "X"}, "array"),
    ([{"value": "X"}], "tagPath"),
    ([{"tagPath": {"tag": PATIENT_NAME}}], "value"),
    ([{"tagPath": {"tag": PATIENT_NAME}, "value": 5}], "string"),
    ([{"tagPath": {"tag": "00100010"}, "value": "X"}], "tagPath"),
    ([{"tagPath": {"tag": PATIENT_NAME, "previous": {"tag": REF_IMAGE_SEQ, "item": "0"}}, "value": "X"}], "item"),
    ([{"tagPath": {"tag": PATIENT_NAME, "previous": {"tag": REF_IMAGE_SEQ}}, "value": "X"}], "item"),
    ([{"tagPath": {"tag": PATIENT_NAME, "previous": "x"}, "value": "X"}], "tagPathTrunk"),
    (["x"], "tagPath"),
])
def test_bad_body_is_400_and_original_untouched(client, services, stored, body, needle):
    image, data = stored()
    r = modify(client, image["id"], body)
    assert r.status_code == 400
    assert needle in r.get_json()["error"]
    assert_untouched(client, services, image, data)


def test_invalid_json_is_400(client, services, stored):
    image, data = stored()
    r = client.put(f"/api/images/{image['id']}/modify", data=b"[{not json", content_type="application/json")
    assert r.status_code == 400
    assert "JSON" in r.get_json()["error"]
    assert_untouched(client, services, image, data)


@pytest.mark.parametrize("mapping, needle", [
    ({"tagPath": tp(0x00280010), "value": "abc"}, "US"),                 # Rows: letters in US
    ({"tagPath": tp(0x00280010), "value": "70000"}, "out of range"),     # Rows: too big for US
    ({"tagPath": tp(0x00280010), "value": "-1"}, "out of range"),
    ({"tagPath": tp(0x00200013), "value": "1.5"}, "IS"),                 # InstanceNumber
    ({"tagPath": tp(0x00080020), "value": "yesterday"}, "DA"),           # StudyDate
    ({"tagPath": tp(0x0020000D), "value": "1.2.abc"}, "UI"),             # StudyInstanceUID
    ({"tagPath": tp(0x00100020), "value": "x" * 65}, "64"),              # PatientID (LO)
    ({"tagPath": tp(PATIENT_NAME), "value": "Müller"}, "Character Set"),  # no charset
    ({"tagPath": tp(0x00080060), "value": "Ö"}, "Modality"),             # CS: not allowed
    ({"tagPath": tp(0x7FE00010), "value": "x"}, "Pixel Data"),
    ({"tagPath": tp(0x00020010), "value": "1.2.840.10008.1.2"}, "file meta"),
    ({"tagPath": tp(0x00100000), "value": "4"}, "group length"),
    ({"tagPath": tp(0x00091001), "value": "x"}, "VR"),                   # private, absent: no VR
    ({"tagPath": tp(REF_IMAGE_SEQ), "value": "x"}, "sequence"),
])
def test_value_the_vr_cannot_hold_is_400(client, services, stored, mapping, needle):
    image, data = stored()
    r = modify(client, image["id"], [{"tagPath": tp(PATIENT_NAME), "value": "Ok^Name"}, mapping])
    assert r.status_code == 400, r.get_json()
    assert needle.lower() in r.get_json()["error"].lower()
    assert_untouched(client, services, image, data)


def test_unencodable_in_dataset_charset_is_400(client, services, stored):
    image, data = stored(SpecificCharacterSet="ISO_IR 100")
    r = modify(client, image["id"], [{"tagPath": tp(PATIENT_NAME), "value": "山田"}])
    assert r.status_code == 400
    assert "character set" in r.get_json()["error"]
    assert_untouched(client, services, image, data)


@pytest.mark.parametrize("trunk", [
    ((REF_IMAGE_SEQ, "3"),),                      # item past the end
    ((0x00081115, "1"),),                         # sequence the dataset lacks
    ((0x00081115, "*"),),                         # wildcard over a missing sequence
    ((REF_IMAGE_SEQ, "1"), (0x00081199, "*")),    # nested sequence the item lacks
])
def test_path_to_missing_item_is_400(client, services, stored, trunk):
    image, data = stored(with_references(2))
    r = modify(client, image["id"], [{"tagPath": tp(REF_SOP_INSTANCE_UID, *trunk), "value": "1.2"}])
    assert r.status_code == 400
    assert "item" in r.get_json()["error"]
    assert_untouched(client, services, image, data)


def test_emptying_a_hierarchy_uid_is_400(client, services, stored):
    image, data = stored()
    r = modify(client, image["id"], [{"tagPath": tp(0x0020000E), "value": ""}])
    assert r.status_code == 400
    assert_untouched(client, services, image, data)


def test_unknown_image_is_404(client, services):
    r = modify(client, 4711, [{"tagPath": tp(PATIENT_NAME), "value": "X"}])
    assert r.status_code == 404
    assert "error" in r.get_json()
    assert image_count(services) == 0


def test_needs_authentication(anon_client, client, services, stored):
    image, data = stored()
    r = anon_client.put(f"/api/images/{image['id']}/modify",
                        json=[{"tagPath": tp(PATIENT_NAME), "value": "X"}])
    assert r.status_code == 401
    assert_untouched(client, services, image, data)


def test_identity_of_another_image_is_409_and_nothing_changes(client, services, stored):
    first, _ = stored()
    second, data = stored()
    r = modify(client, second["id"], [{"tagPath": tp(0x00080018), "value": first["sopInstanceUID"]["value"]}])
    assert r.status_code == 409, r.get_json()
    assert client.get(f"/api/images/{second['id']}").data == data
    assert client.get(f"/api/images/{first['id']}").status_code == 200
    assert image_count(services) == 2
    assert os.listdir(services.storage.temp_dir()) == []


# -- atomicity and concurrency ------------------------------------------------------------

def test_failure_while_storing_keeps_old_image(client, services, stored, monkeypatch):
    image, data = stored()
    series_id = image["seriesId"]
    assert client.post(f"/api/metadata/series/{series_id}/seriestags", json={"name": "Keep"}).status_code == 201
    files_before = sorted(services.storage.ids())

    def broken_put_file(image_id, path):
        raise OSError("disk on fire")

    monkeypatch.setattr(services.storage, "put_file", broken_put_file)
    r = modify(client, image["id"], [{"tagPath": tp(PATIENT_NAME), "value": "Smith^Jane"}])
    assert r.status_code == 500
    monkeypatch.undo()

    assert client.get(f"/api/images/{image['id']}").data == data
    assert client.get(f"/api/metadata/images/{image['id']}").get_json()["seriesId"] == series_id
    assert [p["patientName"]["value"] for p in client.get("/api/metadata/patients").get_json()] == ["Doe^John"]
    assert [t["name"] for t in client.get(f"/api/metadata/series/{series_id}/seriestags").get_json()] == ["Keep"]
    assert client.get(f"/api/metadata/series/{series_id}/source").status_code == 200
    assert image_count(services) == 1
    assert sorted(services.storage.ids()) == files_before
    assert os.listdir(services.storage.temp_dir()) == []
    # And the image can still be modified afterwards.
    assert modify(client, image["id"], [{"tagPath": tp(PATIENT_NAME), "value": "Smith^Jane"}]).status_code == 201


def test_concurrent_modifications_of_one_image_keep_exactly_one(app, services, stored):
    from helpers import ADMIN, AuthClient

    image, data = stored()
    results = []
    barrier = threading.Barrier(4)

    def worker(n):
        c = AuthClient(app.test_client(), ADMIN)
        barrier.wait()
        r = modify(c, image["id"], [{"tagPath": tp(PATIENT_NAME), "value": f"Name^{n}"}])
        results.append((r.status_code, r.get_json()))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    codes = sorted(code for code, _ in results)
    assert codes.count(201) >= 1
    assert set(codes) <= {201, 404}, results
    # Each success replaced the image it was given; only one can have done so.
    assert codes.count(201) == 1, results
    winner = next(body for code, body in results if code == 201)
    c = AuthClient(app.test_client(), ADMIN)
    assert c.get(f"/api/images/{image['id']}").status_code == 404
    got = c.get(f"/api/images/{winner['id']}")
    assert got.status_code == 200
    assert str(read(got.data).PatientName).startswith("Name^")
    assert image_count(services) == 1
    assert sorted(services.storage.ids()) == [winner["id"]]
    assert len(c.get("/api/metadata/patients").get_json()) == 1


# -- encodings and storage back-ends --------------------------------------------------------

@pytest.mark.parametrize("syntax", [
    pydicom.uid.ImplicitVRLittleEndian,
    pydicom.uid.ExplicitVRBigEndian,
    pydicom.uid.DeflatedExplicitVRLittleEndian,
])
def test_modify_in_other_transfer_syntaxes(client, stored, syntax):
    image, data = stored(with_references(2), transfer_syntax=syntax)
    r = modify(client, image["id"], [
        {"tagPath": tp(PATIENT_NAME), "value": "Smith^Jane"},
        {"tagPath": tp(REF_SOP_INSTANCE_UID, (REF_IMAGE_SEQ, "2")), "value": "1.2.3.4"},
        {"tagPath": tp(0x00280106), "value": "2"},
    ])
    assert r.status_code == 201, r.get_json()
    before, after = read(data), read(client.get(f"/api/images/{r.get_json()['id']}").data)
    assert after.file_meta.TransferSyntaxUID == syntax
    assert after.PatientName == "Smith^Jane"
    assert after.ReferencedImageSequence[1].ReferencedSOPInstanceUID == "1.2.3.4"
    assert after.SmallestImagePixelValue == 2
    changed = (PATIENT_NAME, REF_IMAGE_SEQ, 0x00280106)
    assert without(after, *changed) == without(before, *changed)
    assert after.PixelData == before.PixelData


@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "rtplan.dcm"])
def test_modify_real_files(client, upload, name):
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not bundled")
    data = open(path, "rb").read()
    image = upload(data).get_json()
    r = modify(client, image["id"], [{"tagPath": tp(0x00100020), "value": "NEWID"}])
    assert r.status_code == 201, r.get_json()
    before, after = read(data), read(client.get(f"/api/images/{r.get_json()['id']}").data)
    assert after.PatientID == "NEWID"
    # Group lengths are retired and dropped by the rewrite; everything else is equal.
    drop = [el.tag for el in before if el.tag.element == 0] + [0x00100020]
    assert without(after, *drop) == without(before, *drop)


def test_modify_on_memory_storage(app_factory):
    from helpers import ADMIN, AuthClient

    c = AuthClient(app_factory(STORAGE_URL="memory://").test_client(), ADMIN)
    data = make_dicom_bytes(with_references(2))
    image = c.post("/api/images", data=data, content_type="application/octet-stream").get_json()
    r = modify(c, image["id"], [{"tagPath": tp(REF_SOP_INSTANCE_UID, (REF_IMAGE_SEQ, "*")), "value": "9.9"}])
    assert r.status_code == 201, r.get_json()
    after = read(c.get(f"/api/images/{r.get_json()['id']}").data)
    assert [i.ReferencedSOPInstanceUID for i in after.ReferencedImageSequence] == ["9.9", "9.9"]
    assert c.get(f"/api/images/{image['id']}").status_code == 404
