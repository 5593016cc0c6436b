"""Reading JPEG frame headers (T.81 markers) for wrapping."""
import io

import pytest
from PIL import Image

from slicebox.imaging.jpeg import NotJpeg, read_jpeg_info


def _jpeg(mode="RGB", size=(48, 32), **options):
    buf = io.BytesIO()
    Image.new(mode, size, "red" if mode == "RGB" else 128).save(buf, format="JPEG", **options)
    return buf.getvalue()


def test_baseline_colour_subsampled():
    info = read_jpeg_info(_jpeg())
    assert (info.sof, info.precision, info.rows, info.columns, info.components) == (0xC0, 8, 32, 48, 3)
    assert info.subsampled


def test_baseline_colour_not_subsampled():
    info = read_jpeg_info(_jpeg(subsampling=0))
    assert info.components == 3 and not info.subsampled


def test_grey():
    info = read_jpeg_info(_jpeg("L", (7, 5)))
    assert (info.rows, info.columns, info.components) == (5, 7, 1)


def test_progressive_is_reported():
    assert read_jpeg_info(_jpeg(progressive=True)).sof == 0xC2


def test_fill_bytes_and_restart_markers_are_skipped():
    data = _jpeg()
    # insert fill bytes before the second marker
    patched = data[:2] + b"\xFF\xFF" + data[2:]
    assert read_jpeg_info(patched).rows == 32


@pytest.mark.parametrize("data", [b"", b"\xFF\xD8", b"GIF89a....", b"\x89PNG\r\n\x1a\n" + bytes(20),
                                  b"\xFF\xD8\xFF\xE0\x00\x04ab\xFF\xD9",  # no SOF before EOI
                                  b"\xFF\xD8\xFF\xE0\x00\x40abc",         # segment past the end
                                  b"\xFF\xD8\xFF\xC0\x00\x0B\x08\x00\x00\x00\x10\x01\x01\x11\x00"])  # 0 rows
def test_not_jpeg(data):
    with pytest.raises(NotJpeg):
        read_jpeg_info(data)
