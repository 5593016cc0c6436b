"""list_attributes / read_image_information against pydicom's full reading of bundled files."""
import io

import pydicom
import pytest
from pydicom.data import get_testdata_file

from slicebox.dicom.attributes import list_attributes, read_image_information
from slicebox.errors import InvalidDicom

FILES = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
         "JPEG2000.dcm", "image_dfl.dcm", "rtplan.dcm", "rtdose.dcm", "nested_priv_SQ.dcm",
         "examples_ybr_color.dcm", "waveform_ecg.dcm", "test-SR.dcm", "UN_sequence.dcm"]


def _reference(ds, prefix="", depth=0):
    """(path, depth, VR) of every element, read fully by pydicom."""
    for elem in ds:
        path = f"{prefix}({elem.tag.group:04X},{elem.tag.element:04X})"
        yield path, depth, elem.VR
        if elem.VR == "SQ":
            for number, item in enumerate(elem.value, start=1):
                yield from _reference(item, f"{path}[{number}].", depth + 1)


@pytest.mark.parametrize("name", FILES)
def test_every_element_is_listed_in_file_order(name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not bundled")
    ds = pydicom.dcmread(path)
    expected = list(_reference(ds.file_meta)) + list(_reference(ds))
    # Listing stops at Pixel Data (as Slicebox 2.0 did): trailing padding is not listed.
    paths = [e[0] for e in expected]
    if "(7FE0,0010)" in paths:
        expected = expected[:paths.index("(7FE0,0010)") + 1]
    rows = list_attributes(path)
    got = [(r["path"], r["depth"], r["vr"]) for r in rows]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    for (p, _, vr), (_, _, ref_vr) in zip(got, expected):
        if ref_vr and " or " not in ref_vr and ref_vr != "UN":
            assert vr == ref_vr, p
    # the same list from an open file object (storage back-ends without paths)
    with open(path, "rb") as fh:
        assert list_attributes(io.BytesIO(fh.read())) == rows


@pytest.mark.parametrize("name", ["CT_small.dcm", "rtplan.dcm", "examples_ybr_color.dcm"])
def test_text_values_match_pydicom(name):
    path = get_testdata_file(name, download=False)
    ds = pydicom.dcmread(path)
    rows = {r["path"]: r for r in list_attributes(path) if r["depth"] == 0}
    checked = 0
    for elem in ds:
        if elem.VR in ("PN", "LO", "SH", "CS", "UI", "DA", "TM", "IS", "DS") and elem.VM == 1:
            row = rows[f"({elem.tag.group:04X},{elem.tag.element:04X})"]
            assert row["value"] == str(elem.value), row
            assert row["multiplicity"] == 1
            checked += 1
    assert checked > 10


def test_deflated_file_pixel_row_comes_without_reading_it():
    path = get_testdata_file("image_dfl.dcm", download=False)
    pixel = list_attributes(path)[-1]
    assert pixel["name"] == "PixelData" and pixel["value"] == "< Binary data >" and pixel["length"] == 512 * 512


def test_garbage_is_invalid_dicom():
    with pytest.raises(InvalidDicom):
        list_attributes(io.BytesIO(b"hello world" * 50))


def test_image_information_of_bundled_multiframe():
    path = get_testdata_file("examples_ybr_color.dcm", download=False)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    info = read_image_information(path)
    assert info["numberOfFrames"] == 30 == int(ds.NumberOfFrames)
    assert info["frameIndex"] == int(ds.InstanceNumber)
