"""GET /images/{id}/png through HTTP: window, rescale, signed, MONOCHROME1, colour,
multi-frame, compressed syntaxes, resizing and the error statuses."""
import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from factories import make_dataset, make_dicom_bytes

# A 4x4 frame whose values straddle a window of 100..200.
VALUES = np.array([[0, 50, 99, 100],
                   [120, 150, 180, 199],
                   [200, 201, 250, 300],
                   [1000, 2000, 3000, 4000]], dtype=np.uint16)


def _png(client, image_id, **params):
    r = client.get(f"/api/images/{image_id}/png", query_string=params)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == "image/png"
    return Image.open(io.BytesIO(r.data))


def _pixels(img):
    return np.asarray(img)


def _bundled_unique(name):
    """A bundled pydicom file with fresh UIDs, so files sharing UIDs are stored apart."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue(), ds


def test_window_from_query_maps_min_to_black_and_max_to_white(client, upload):
    image = upload(make_dicom_bytes(make_dataset(rows=4, columns=4, pixels=VALUES))).get_json()
    img = _png(client, image["id"], windowmin=100, windowmax=200)
    assert img.mode == "L" and img.size == (4, 4)
    px = _pixels(img)
    below, above = VALUES <= 100, VALUES >= 200
    assert (px[below] == 0).all()
    assert (px[above] == 255).all()
    inside = px[~below & ~above]
    assert (inside > 0).all() and (inside[:-1] < 255).all()  # linear inside (PS3.3 C.11.2.1.2.1)
    assert abs(int(px[1, 1]) - 128) <= 2  # 150 is the window center (min + width/2)
    # increasing values never render darker
    order = np.argsort(VALUES, axis=None)
    assert (np.diff(px.flatten()[order].astype(int)) >= 0).all()


def test_window_from_dataset_when_query_has_none(client, upload):
    ds = make_dataset(rows=4, columns=4, pixels=VALUES, WindowCenter=150, WindowWidth=100)
    image = upload(make_dicom_bytes(ds)).get_json()
    from_dataset = _pixels(_png(client, image["id"]))
    from_query = _pixels(_png(client, image["id"], windowmin=100, windowmax=200))
    np.testing.assert_array_equal(from_dataset, from_query)
    # windowmin >= windowmax means "not given"
    np.testing.assert_array_equal(_pixels(_png(client, image["id"], windowmin=300, windowmax=300)),
                                  from_dataset)


def test_first_of_several_dataset_windows_is_used(client, upload):
    ds = make_dataset(rows=4, columns=4, pixels=VALUES, WindowCenter=[150, 2000], WindowWidth=[100, 4000])
    image = upload(make_dicom_bytes(ds)).get_json()
    px = _pixels(_png(client, image["id"]))
    assert px[0, 3] == 0 and px[2, 0] == 255


def test_window_from_frame_min_max_without_any(client, upload):
    image = upload(make_dicom_bytes(make_dataset(rows=4, columns=4, pixels=VALUES))).get_json()
    px = _pixels(_png(client, image["id"]))
    assert px[0, 0] == 0 and px[3, 3] == 255
    assert 0 < px[3, 1] < 255


def test_rescale_slope_and_intercept_apply_before_window(client, upload):
    # stored 0..4000, rescaled = 2 * stored - 1000; the window is in rescaled units
    ds = make_dataset(rows=4, columns=4, pixels=VALUES, RescaleSlope=2, RescaleIntercept=-1000)
    image = upload(make_dicom_bytes(ds)).get_json()
    px = _pixels(_png(client, image["id"], windowmin=-800, windowmax=-600)).astype(int)  # stored 100..200
    plain = upload(make_dicom_bytes(make_dataset(rows=4, columns=4, pixels=VALUES))).get_json()
    expected = _pixels(_png(client, plain["id"], windowmin=100, windowmax=200)).astype(int)
    # the same picture, give or take the half-unit offsets of the window function
    assert np.abs(px - expected).max() <= 1
    assert (px[VALUES <= 100] == 0).all() and (px[VALUES >= 200] == 255).all()


def test_signed_pixels(client, upload):
    signed = np.array([[-2000, -1000, -500], [0, 500, 1000]], dtype=np.int16)
    ds = make_dataset(rows=2, columns=3, pixels=signed.view(np.uint16), PixelRepresentation=1)
    image = upload(make_dicom_bytes(ds)).get_json()
    px = _pixels(_png(client, image["id"], windowmin=-1000, windowmax=1000))
    assert px[0, 0] == 0 and px[0, 1] == 0 and px[1, 2] == 255
    assert 120 <= px[1, 0] <= 135  # 0 sits mid-window; read as unsigned it would be 65535 -> white
    assert px[0, 2] < px[1, 0] < px[1, 1]


def test_monochrome1_is_inverted(client, upload):
    mono2 = upload(make_dicom_bytes(make_dataset(rows=4, columns=4, pixels=VALUES))).get_json()
    mono1 = upload(make_dicom_bytes(make_dataset(rows=4, columns=4, pixels=VALUES,
                                                 PhotometricInterpretation="MONOCHROME1"))).get_json()
    a = _pixels(_png(client, mono2["id"], windowmin=100, windowmax=200))
    b = _pixels(_png(client, mono1["id"], windowmin=100, windowmax=200))
    np.testing.assert_array_equal(b, 255 - a)
    assert b[0, 0] == 255  # low values are white in MONOCHROME1


def test_rgb_pixels_are_shown_as_stored(client, upload):
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    ds = make_dataset(rows=2, columns=2, SamplesPerPixel=3, PhotometricInterpretation="RGB",
                      PlanarConfiguration=0, BitsAllocated=8, BitsStored=8, HighBit=7)
    ds.PixelData = rgb.tobytes()
    image = upload(make_dicom_bytes(ds)).get_json()
    img = _png(client, image["id"])
    assert img.mode == "RGB" and img.size == (2, 2)
    np.testing.assert_array_equal(_pixels(img), rgb)


def _frames_dataset(n=3):
    frames = np.stack([np.full((4, 6), 100 * (k + 1), dtype=np.uint16) for k in range(n)])
    ds = make_dataset(rows=4, columns=6, NumberOfFrames=n)
    ds.PixelData = frames.tobytes()
    return ds


def test_multi_frame_renders_the_requested_frame(client, upload):
    image = upload(make_dicom_bytes(_frames_dataset(3))).get_json()
    levels = [int(_pixels(_png(client, image["id"], framenumber=k, windowmin=0, windowmax=300))[0, 0])
              for k in (1, 2, 3)]
    assert levels[0] < levels[1] < levels[2] == 255
    assert abs(levels[0] - 85) <= 2 and abs(levels[1] - 170) <= 2


@pytest.mark.parametrize("params", [{"framenumber": 4}, {"framenumber": 0}, {"framenumber": -1},
                                    {"framenumber": "x"}, {"windowmin": "low"}, {"windowmax": "1.5"},
                                    {"imageheight": -5}, {"imageheight": "big"}, {"imageheight": 100000}])
def test_bad_parameters_are_400(client, upload, params):
    image = upload(make_dicom_bytes(_frames_dataset(3))).get_json()
    r = client.get(f"/api/images/{image['id']}/png", query_string=params)
    assert r.status_code == 400
    assert "error" in r.get_json()


def test_unknown_image_is_404(client):
    assert client.get("/api/images/777/png").status_code == 404


def test_image_height_resizes_keeping_aspect_ratio(client, upload):
    image = upload(make_dicom_bytes(make_dataset(rows=8, columns=16))).get_json()
    img = _png(client, image["id"], imageheight=32)
    assert img.size == (64, 32)
    assert _png(client, image["id"], imageheight=0).size == (16, 8)
    assert _png(client, image["id"], imageheight=4).size == (8, 4)


def test_no_pixel_data_is_501(client, upload):
    image = upload(make_dicom_bytes(make_dataset(PixelData=None))).get_json()
    r = client.get(f"/api/images/{image['id']}/png")
    assert r.status_code == 501 and "pixel data" in r.get_json()["error"]


def test_undecodable_pixel_data_is_501(client, upload):
    # 12-bit lossy JPEG with a stream neither pylibjpeg nor Pillow accepts
    data, _ = _bundled_unique("JPEG-lossy.dcm")
    image = upload(data).get_json()
    r = client.get(f"/api/images/{image['id']}/png")
    assert r.status_code == 501
    assert "decode" in r.get_json()["error"]


# name, expected mode, frames to try
BUNDLED = [
    ("CT_small.dcm", "L", (1,)),
    ("MR_small.dcm", "L", (1,)),
    ("MR_small_bigendian.dcm", "L", (1,)),
    ("MR_small_RLE.dcm", "L", (1,)),
    ("JPEG2000.dcm", "L", (1,)),
    ("JPGExtended.dcm", "L", (1,)),
    ("image_dfl.dcm", "L", (1,)),
    ("SC_rgb.dcm", "RGB", (1,)),
    ("SC_rgb_jpeg_dcmtk.dcm", "RGB", (1,)),
    ("SC_rgb_rle_16bit_2frame.dcm", "RGB", (1, 2)),
    ("examples_palette.dcm", "RGB", (1,)),
    ("examples_ybr_color.dcm", "RGB", (1, 30)),
    ("emri_small.dcm", "L", (1, 10)),
    ("rtdose.dcm", "L", (1, 15)),
]


@pytest.mark.parametrize("name,mode,frames", BUNDLED, ids=[b[0] for b in BUNDLED])
def test_bundled_files_render(client, upload, name, mode, frames):
    data, ds = _bundled_unique(name)
    r = upload(data)
    assert r.status_code == 201, r.get_json()
    for frame in frames:
        img = _png(client, r.get_json()["id"], framenumber=frame)
        assert img.mode == mode
        assert img.size == (ds.Columns, ds.Rows)
        px = _pixels(img)
        assert px.max() > px.min(), "an image of one flat colour suggests a decoding error"


def test_compressed_renders_like_uncompressed(client, upload):
    plain, _ = _bundled_unique("MR_small.dcm")
    rle, _ = _bundled_unique("MR_small_RLE.dcm")
    a = _pixels(_png(client, upload(plain).get_json()["id"]))
    b = _pixels(_png(client, upload(rle).get_json()["id"]))
    np.testing.assert_array_equal(a, b)


def test_ybr_is_converted_to_rgb(client, upload):
    rgb, _ = _bundled_unique("SC_rgb_rle.dcm")
    ybr, _ = _bundled_unique("SC_ybr_full_422_uncompressed.dcm")
    a = _pixels(_png(client, upload(rgb).get_json()["id"])).astype(int)
    b = _pixels(_png(client, upload(ybr).get_json()["id"])).astype(int)
    assert a.shape == b.shape
    # same picture; YCbCr 4:2:2 round trip costs a few levels
    assert np.abs(a - b).mean() < 8


def test_palette_colours_are_looked_up(client, upload):
    data, _ = _bundled_unique("examples_palette.dcm")
    px = _pixels(_png(client, upload(data).get_json()["id"])).astype(int)
    # a grey rendering of the indices would have R == G == B everywhere
    assert (px[..., 0] != px[..., 2]).any()


def test_app_start_warms_up_numba(app):
    from slicebox import _speedups
    from slicebox.imaging import window

    assert window.backend() == ("numpy" if _speedups.disabled() else "numba")


def test_enhanced_multi_frame_uses_per_frame_window_and_shared_rescale(client, upload):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    frames = np.stack([VALUES, VALUES])
    ds = make_dataset(rows=4, columns=4, NumberOfFrames=2, RescaleSlope=None, RescaleIntercept=None)
    ds.PixelData = frames.astype(np.uint16).tobytes()
    transform = Dataset()
    transform.RescaleSlope = 2
    transform.RescaleIntercept = 0
    transform.RescaleType = "US"
    shared = Dataset()
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for center, width in ((300, 200), (3000, 2000)):  # rescaled units: stored 100..200, then 1000..2000
        voi = Dataset()
        voi.WindowCenter = center
        voi.WindowWidth = width
        group = Dataset()
        group.FrameVOILUTSequence = Sequence([voi])
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    image = upload(make_dicom_bytes(ds)).get_json()

    first = _pixels(_png(client, image["id"], framenumber=1))
    second = _pixels(_png(client, image["id"], framenumber=2))
    assert (first[VALUES <= 100] == 0).all() and (first[VALUES >= 200] == 255).all()
    assert (second[VALUES <= 1000] == 0).all() and (second[VALUES >= 2000] == 255).all()
    # stored 150 is mid-window in frame 1 and black in frame 2
    assert 100 < first[1, 1] < 155 and second[1, 1] == 0
