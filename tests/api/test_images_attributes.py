"""GET /images/{id}/attributes and /imageinformation through HTTP."""
import io

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from factories import make_dataset, make_dicom_bytes


def _by_path(rows):
    return {r["path"]: r for r in rows}


def _referenced(uid):
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = uid
    return item


def test_attributes_list_every_element_with_paths_and_summaries(client, upload):
    ds = make_dataset(rows=8, columns=8)
    ds.ReferencedImageSequence = Sequence([_referenced("1.2.3.4"), _referenced("1.2.3.5")])
    ds.ReferencedImageSequence[1].PurposeOfReferenceCodeSequence = Sequence([Dataset()])
    ds.ReferencedImageSequence[1].PurposeOfReferenceCodeSequence[0].CodeValue = "121311"
    ds.add_new(0x00091010, "LO", "ACME 1.0")   # private creator
    ds.add_new(0x00091011, "OB", bytes(range(40)))  # long binary: summarized
    ds.add_new(0x00091012, "OB", b"\x01\x02\x03\x04")  # short binary: shown
    data = make_dicom_bytes(ds)
    image = upload(data).get_json()

    r = client.get(f"/api/images/{image['id']}/attributes")
    assert r.status_code == 200
    rows = r.get_json()
    paths = _by_path(rows)
    assert set(rows[0]) == {"group", "element", "vr", "length", "multiplicity", "depth", "path", "name", "value"}

    # file meta information is listed first
    assert rows[0]["group"] == "0002"
    ts = paths["(0002,0010)"]
    assert ts["value"] == ExplicitVRLittleEndian and ts["name"] == "TransferSyntaxUID" and ts["depth"] == 0

    name = paths["(0010,0010)"]
    assert name == {"group": "0010", "element": "0010", "vr": "PN", "length": 8, "multiplicity": 1,
                    "depth": 0, "path": "(0010,0010)", "name": "PatientName", "value": "Doe^John"}
    image_type = paths["(0008,0008)"]
    assert image_type["value"] == "ORIGINAL\\PRIMARY\\AXIAL" and image_type["multiplicity"] == 3
    assert paths["(0028,0010)"]["value"] == "8" and paths["(0028,0010)"]["vr"] == "US"

    # the sequence row, then its items' elements one level deeper
    seq = paths["(0008,1140)"]
    assert seq["vr"] == "SQ" and seq["depth"] == 0 and seq["multiplicity"] == 2
    first = paths["(0008,1140)[1].(0008,1155)"]
    assert first["value"] == "1.2.3.4" and first["depth"] == 1 and first["name"] == "ReferencedSOPInstanceUID"
    assert paths["(0008,1140)[2].(0008,1155)"]["value"] == "1.2.3.5"
    nested = paths["(0008,1140)[2].(0040,A170)[1].(0008,0100)"]
    assert nested["depth"] == 2 and nested["value"] == "121311"
    index = [r["path"] for r in rows]
    assert index.index("(0008,1140)") < index.index("(0008,1140)[1].(0008,1150)") < index.index(
        "(0008,1140)[2].(0008,1155)")

    # private and binary values
    assert paths["(0009,1010)"]["value"] == "ACME 1.0"
    assert paths["(0009,1011)"]["value"] == "< Binary data >" and paths["(0009,1011)"]["length"] == 40
    assert paths["(0009,1012)"]["value"] == "01 02 03 04"
    pixel = paths["(7FE0,0010)"]
    assert pixel["value"] == "< Binary data >" and pixel["length"] == 8 * 8 * 2 and pixel["name"] == "PixelData"
    assert rows[-1]["path"] == "(7FE0,0010)"
    # every element of the stored file is listed (pydicom's count, plus file meta)
    stored = pydicom.dcmread(io.BytesIO(data))
    expected = len(stored.file_meta) + sum(1 for _ in stored.iterall())
    assert len(rows) == expected


def test_attributes_decode_specific_character_set(client, upload):
    ds = make_dataset(SpecificCharacterSet="ISO_IR 100", PatientName="Müller^Jörg",
                      StudyDescription="Tête")
    data = make_dicom_bytes(ds)
    assert "Müller".encode("latin-1") in data  # stored as Latin-1, not UTF-8
    image = upload(data).get_json()
    paths = _by_path(client.get(f"/api/images/{image['id']}/attributes").get_json())
    assert paths["(0010,0010)"]["value"] == "Müller^Jörg"
    assert paths["(0008,1030)"]["value"] == "Tête"


def test_attributes_of_implicit_vr_file(client, upload):
    data = make_dicom_bytes(transfer_syntax=ImplicitVRLittleEndian)
    image = upload(data).get_json()
    paths = _by_path(client.get(f"/api/images/{image['id']}/attributes").get_json())
    assert paths["(0010,0010)"]["vr"] == "PN" and paths["(0010,0010)"]["value"] == "Doe^John"
    assert paths["(7FE0,0010)"]["vr"] == "OW" and paths["(7FE0,0010)"]["length"] == 128


def test_encapsulated_pixel_data_shows_fragments(client, upload):
    path = get_testdata_file("JPEG2000.dcm", download=False)
    if path is None:
        pytest.skip("JPEG2000.dcm not bundled")
    image = upload(open(path, "rb").read()).get_json()
    pixel = _by_path(client.get(f"/api/images/{image['id']}/attributes").get_json())["(7FE0,0010)"]
    assert pixel["value"] == "< Fragments >" and pixel["length"] == -1 and pixel["vr"] == "OB"


def test_attributes_of_unknown_image_is_404(client):
    r = client.get("/api/images/4242/attributes")
    assert r.status_code == 404 and "error" in r.get_json()


def test_image_information_from_header(client, upload):
    ds = make_dataset(rows=4, columns=4, NumberOfFrames=3, InstanceNumber=4, ImageIndex=7,
                      SmallestImagePixelValue=5, LargestImagePixelValue=900)
    ds.PixelData = bytes(3 * 4 * 4 * 2)
    image = upload(make_dicom_bytes(ds)).get_json()
    r = client.get(f"/api/images/{image['id']}/imageinformation")
    assert r.status_code == 200
    assert r.get_json() == {"numberOfFrames": 3, "frameIndex": 7, "minimumPixelValue": 5,
                            "maximumPixelValue": 900}


def test_image_information_defaults(client, upload):
    image = upload(make_dicom_bytes(make_dataset(InstanceNumber=None))).get_json()
    assert client.get(f"/api/images/{image['id']}/imageinformation").get_json() == {
        "numberOfFrames": 1, "frameIndex": 1, "minimumPixelValue": 0, "maximumPixelValue": 0}


def test_image_information_signed_range_and_instance_number(client, upload):
    ds = make_dataset(PixelRepresentation=1, InstanceNumber=12)
    ds.SmallestImagePixelValue = -1024
    ds.LargestImagePixelValue = 3071
    image = upload(make_dicom_bytes(ds)).get_json()
    info = client.get(f"/api/images/{image['id']}/imageinformation").get_json()
    assert info == {"numberOfFrames": 1, "frameIndex": 12, "minimumPixelValue": -1024,
                    "maximumPixelValue": 3071}


def test_image_information_of_unknown_image_is_404(client):
    assert client.get("/api/images/4242/imageinformation").status_code == 404


def test_plain_user_may_read_attributes(user_client, upload):
    image = upload().get_json()
    assert user_client.get(f"/api/images/{image['id']}/attributes").status_code == 200
