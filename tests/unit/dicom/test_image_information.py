"""read_image_information (streaming engine) against the pydicom-based reader it replaced."""
import io
import os
import warnings

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from slicebox.dicom.attributes import read_image_information
from slicebox.errors import InvalidDicom
from tests.factories import make_dataset, make_dicom_bytes

_TAGS = ["NumberOfFrames", "InstanceNumber", "ImageIndex", "SmallestImagePixelValue",
         "LargestImagePixelValue", "PixelRepresentation", "SpecificCharacterSet"]


def _reference_int(ds, keyword, default):
    try:
        value = ds.get(keyword)
        if isinstance(value, (MultiValue, list, tuple)):
            value = value[0] if value else None
        if value is None or value == "" or value == b"":
            return default
        if isinstance(value, (bytes, bytearray)):
            if len(value) != 2:
                return default
            signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
            return int.from_bytes(value[:2], "little", signed=signed)
        return int(float(value))
    except (ValueError, TypeError, OverflowError):
        return default


def reference(source):
    """The pydicom-based read_image_information as it was."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(source, stop_before_pixels=True, specific_tags=_TAGS)
        except Exception:  # noqa: BLE001
            return None
        frames = _reference_int(ds, "NumberOfFrames", None)
        instance = _reference_int(ds, "InstanceNumber", None)
        index = _reference_int(ds, "ImageIndex", None)
        present = [v for v in (instance, index) if v is not None]
        return {
            "numberOfFrames": frames if frames is not None else 1,
            "frameIndex": max(present) if present else 1,
            "minimumPixelValue": _reference_int(ds, "SmallestImagePixelValue", 0),
            "maximumPixelValue": _reference_int(ds, "LargestImagePixelValue", 0),
        }


def _engine(source):
    try:
        return read_image_information(source)
    except InvalidDicom:
        return None


@pytest.mark.parametrize("path", sorted(p for p in set(get_testdata_files()) if os.path.isfile(p)),
                         ids=os.path.basename)
def test_same_as_pydicom_for_every_shipped_file(path):
    assert _engine(path) == reference(path)


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("pixel_representation", [0, 1])
def test_smallest_and_largest_follow_pixel_representation(ts, pixel_representation):
    ds = make_dataset(PixelRepresentation=pixel_representation, NumberOfFrames="3 ",
                      InstanceNumber="7", ImageIndex=9)
    ds.SmallestImagePixelValue = -1024 if pixel_representation else 10
    ds.LargestImagePixelValue = 3071
    data = make_dicom_bytes(ds, ts)
    got = read_image_information(io.BytesIO(data))
    assert got == reference(io.BytesIO(data))
    assert got == {"numberOfFrames": 3, "frameIndex": 9,
                   "minimumPixelValue": -1024 if pixel_representation else 10, "maximumPixelValue": 3071}


def test_garbage_is_invalid():
    with pytest.raises(InvalidDicom):
        read_image_information(io.BytesIO(b"hello world" * 50))
