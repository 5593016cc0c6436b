"""POST /images/jpeg: wrap a JPEG as a Secondary Capture image in an existing study."""
import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import generate_frames

from factories import make_dataset, make_dicom_bytes

SC = "1.2.840.10008.5.1.4.1.1.7"
BASELINE = "1.2.840.10008.1.2.4.50"


def _two_colour_jpeg(size=(48, 32), **options):
    img = Image.new("RGB", size, (255, 0, 0))
    img.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, **options)
    return buf.getvalue()


@pytest.fixture
def study(upload, services):
    """A stored study; returns (study id, the uploaded dataset)."""
    ds = make_dataset(PatientName="Svensson^Anna", PatientID="P-77", PatientBirthDate="19800202",
                      PatientSex="F", StudyDescription="Hand", AccessionNumber="A9", StudyID="ST9",
                      PatientAge="044Y")
    upload(make_dicom_bytes(ds))
    with services.db.connection() as conn:
        study_id = conn.scalar("SELECT id FROM studies WHERE study_instance_uid = ?", (ds.StudyInstanceUID,))
    return study_id, ds


def _post(client, data, **params):
    return client.post("/api/images/jpeg", query_string=params, data=data,
                       content_type="application/octet-stream")


def _attributes(client, image_id):
    rows = client.get(f"/api/images/{image_id}/attributes").get_json()
    return {r["name"]: r["value"] for r in rows if r["depth"] == 0}


def test_wrap_jpeg_into_study(client, study, services):
    study_id, original = study
    jpeg = _two_colour_jpeg()
    r = _post(client, jpeg, studyid=study_id, description="Photo of the hand")
    assert r.status_code == 201, r.get_json()
    image = r.get_json()
    assert set(image) == {"id", "seriesId", "sopInstanceUID", "imageType", "instanceNumber"}

    attrs = _attributes(client, image["id"])
    assert attrs["SOPClassUID"] == SC and attrs["MediaStorageSOPClassUID"] == SC
    assert attrs["TransferSyntaxUID"] == BASELINE
    assert attrs["SOPInstanceUID"] == image["sopInstanceUID"]["value"]
    assert (attrs["Rows"], attrs["Columns"]) == ("32", "48")
    assert (attrs["SamplesPerPixel"], attrs["BitsAllocated"], attrs["BitsStored"], attrs["HighBit"]) == (
        "3", "8", "8", "7")
    assert attrs["PhotometricInterpretation"] == "YBR_FULL_422"  # Pillow subsamples chroma by default
    assert attrs["SeriesDescription"] == "Photo of the hand"
    assert attrs["PixelData"] == "< Fragments >"
    # patient and study from the box's records
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "StudyDescription", "StudyDate", "StudyID", "AccessionNumber", "PatientAge"):
        assert attrs[keyword] == str(original.get(keyword)), keyword
    assert attrs["SeriesInstanceUID"] != original.SeriesInstanceUID

    # filed in the same study, as a new series, with the user as source
    with services.db.connection() as conn:
        row = conn.one("SELECT se.study_id, ss.source_type, ss.source_name FROM series se "
                       "JOIN series_sources ss ON ss.series_id = se.id WHERE se.id = ?", (image["seriesId"],))
        assert conn.scalar("SELECT COUNT(*) FROM series WHERE study_id = ?", (study_id,)) == 2
    assert row == {"study_id": study_id, "source_type": "user", "source_name": "admin"}

    # the JPEG is the single fragment, byte for byte, after an empty offset table
    stored = pydicom.dcmread(io.BytesIO(client.get(f"/api/images/{image['id']}").data))
    assert stored.PixelData[:8] == b"\xFE\xFF\x00\xE0\x00\x00\x00\x00"
    frames = list(generate_frames(stored.PixelData, number_of_frames=1))
    assert frames[0].rstrip(b"\x00") == jpeg.rstrip(b"\x00")


def test_wrapped_jpeg_renders_with_its_colours(client, study):
    r = _post(client, _two_colour_jpeg(), studyid=study[0])
    png = client.get(f"/api/images/{r.get_json()['id']}/png")
    assert png.status_code == 200
    img = Image.open(io.BytesIO(png.data))
    assert img.mode == "RGB" and img.size == (48, 32)
    px = np.asarray(img).astype(int)
    left, right = px[16, 5], px[16, 42]
    assert left[0] > 200 and left[1] < 60 and left[2] < 60, left
    assert right[2] > 200 and right[0] < 60 and right[1] < 60, right


def test_not_subsampled_colour_is_ybr_full(client, study):
    r = _post(client, _two_colour_jpeg(subsampling=0), studyid=study[0])
    assert r.status_code == 201
    assert _attributes(client, r.get_json()["id"])["PhotometricInterpretation"] == "YBR_FULL"


def test_grey_jpeg_is_monochrome2(client, study):
    grey = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (24, 1))
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="JPEG", quality=95)
    r = _post(client, buf.getvalue(), studyid=study[0])
    assert r.status_code == 201
    attrs = _attributes(client, r.get_json()["id"])
    assert (attrs["PhotometricInterpretation"], attrs["SamplesPerPixel"]) == ("MONOCHROME2", "1")
    assert attrs["SeriesDescription"] == ""
    img = Image.open(io.BytesIO(client.get(f"/api/images/{r.get_json()['id']}/png").data))
    assert img.mode == "L" and img.size == (40, 24)
    px = np.asarray(img).astype(int)
    assert px[12, 0] < 20 and px[12, -1] > 235  # the ramp survives (window = frame min/max)


def test_multipart_upload(client, study):
    r = client.post("/api/images/jpeg", query_string={"studyid": study[0]},
                    data={"file": (io.BytesIO(_two_colour_jpeg()), "x.jpg")},
                    content_type="multipart/form-data")
    assert r.status_code == 201


def test_unknown_study_is_404(client, services):
    r = _post(client, _two_colour_jpeg(), studyid=999)
    assert r.status_code == 404
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM images") == 0


@pytest.mark.parametrize("body", [b"not a jpeg at all", b"", b"\xFF\xD8\xFF\xE0\x00\x04ab\xFF\xD9",
                                  b"\x89PNG\r\n\x1a\n" + bytes(64)])
def test_non_jpeg_is_400_and_nothing_stored(client, study, services, body):
    r = _post(client, body, studyid=study[0])
    assert r.status_code == 400
    assert "JPEG" in r.get_json()["error"]
    with services.db.connection() as conn:
        assert conn.scalar("SELECT COUNT(*) FROM images") == 1


def test_progressive_jpeg_is_400(client, study):
    r = _post(client, _two_colour_jpeg(progressive=True), studyid=study[0])
    assert r.status_code == 400 and "progressive" in r.get_json()["error"]


@pytest.mark.parametrize("params", [{}, {"studyid": "abc"}, {"studyid": ""}])
def test_missing_or_bad_study_id_is_400(client, params):
    assert _post(client, _two_colour_jpeg(), **params).status_code == 400


def test_plain_user_may_wrap(user_client, study):
    r = user_client.post("/api/images/jpeg", query_string={"studyid": study[0]}, data=_two_colour_jpeg(),
                         content_type="application/octet-stream")
    assert r.status_code == 201
