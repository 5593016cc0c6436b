"""Hostile input at the engine: one depth limit for every reader, bounded inflating, claimed sizes."""
import os
import struct
import sys
import zlib

import pytest
from pydicom.data import get_testdata_file

from slicebox.dicom import attributes, parsing, pixels, tagstream
from slicebox.dicom.errors import DicomStreamError, InflateLimitError
from slicebox.errors import InvalidDicom, PayloadTooLarge
from slicebox.imaging.jpeg import codestream_dimensions

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "hostile"))
import payloads  # noqa: E402


@pytest.fixture
def limits():
    """Set limits for one test, restore the defaults after."""
    yield tagstream.set_limits
    tagstream.set_limits(max_depth=64, max_inflated=128 << 20)


@pytest.mark.parametrize("defined", [True, False], ids=["defined", "undefined"])
def test_every_engine_reader_stops_at_the_depth_limit(engine, defined):
    ok, deep, abysmal = (payloads.deep_dicom(d, defined) for d in (64, 65, 200_000))
    engine.read_attributes(ok)
    engine.list_elements(ok)
    engine.rewrite(ok)
    tagstream.check_complete(ok)
    for data in (deep, abysmal):  # 200,000 deep crashed the compiled engine (C stack) before
        for call in (lambda: engine.read_attributes(data), lambda: engine.list_elements(data),
                     lambda: engine.rewrite(data), lambda: engine.rewrite(data, None, tagstream.EditPlan()
                                                                          .replace("PatientName", "X")),
                     lambda: tagstream.check_complete(data)):
            with pytest.raises(DicomStreamError, match="nested deeper than 64"):
                call()


def test_the_limit_is_one_setting_for_both_engines(limits, tmp_path):
    data = payloads.deep_dicom(10)
    limits(max_depth=9)
    assert tagstream.max_depth() == 9
    for reader in (tagstream.read_attributes, tagstream.list_elements, tagstream.check_complete):
        with pytest.raises(DicomStreamError, match="nested deeper than 9"):
            reader(data)
    path = tmp_path / "deep.dcm"
    path.write_bytes(data)
    for reader in (attributes.list_attributes, pixels.read_pixel_header):  # pydicom readers are guarded
        with pytest.raises(InvalidDicom, match="nested deeper than 9"):
            reader(str(path))
    limits(max_depth=10)
    tagstream.list_elements(data)
    assert len(attributes.list_attributes(str(path))) > 10


def test_pydicom_readers_refuse_deep_stored_data_instead_of_recursing(tmp_path):
    path = tmp_path / "deep.dcm"
    path.write_bytes(payloads.deep_dicom(5000))
    for reader in (attributes.list_attributes, pixels.read_pixel_header):
        with pytest.raises(InvalidDicom, match="nested deeper than 64"):
            reader(str(path))
    with open(path, "rb") as fh:  # a file object is put back where it was
        fh.seek(7)
        with pytest.raises(InvalidDicom):
            attributes.list_attributes(fh)


def test_a_un_element_the_dictionary_calls_a_sequence_counts_too():
    """pydicom reads UN with a sequence tag as a sequence (implicit VR inside): deep ones are refused."""
    inner = payloads.nested_sequences(100)  # explicit VR; re-encode as implicit VR LE
    implicit = inner.replace(b"SQ\0\0", b"")  # 12-byte explicit headers -> 8-byte implicit ones
    fixed = b"".join(
        struct.pack("<HHI", 0x0040, 0xA730, 8 + 16 * (k - 1)) + struct.pack("<HHI", 0xFFFE, 0xE000, 16 * (k - 1))
        for k in range(100, 0, -1))
    assert len(fixed) == len(implicit)
    value = fixed[8:]  # the UN element is the outer sequence: its value starts with an item
    data = payloads.deep_dicom(0) + b"\x40\x00\x30\xa7UN\0\0" + struct.pack("<I", len(value)) + value
    with pytest.raises(DicomStreamError, match="nested deeper"):
        tagstream.check_complete(data)
    shallow = fixed[-16 * 10 + 8:]  # 10 levels: fine
    tagstream.check_complete(payloads.deep_dicom(0) + b"\x40\x00\x30\xa7UN\0\0" + struct.pack("<I", len(shallow))
                             + shallow)
    # opaque bytes in a UN element with a sequence tag are not an error (readers keep them as bytes)
    tagstream.check_complete(payloads.deep_dicom(0) + b"\x40\x00\x30\xa7UN\0\0" + struct.pack("<I", 8) + b"12345678")


# -- inflating -----------------------------------------------------------------------------------
def test_deflated_data_must_end_cleanly(engine):
    good = payloads.deflated_dicom()
    engine.read_attributes(good)
    engine.read_attributes(good + b"\0\0")  # zero padding is padding
    with pytest.raises(DicomStreamError, match="garbage after the deflated data"):
        engine.list_elements(good + b"GARBAGE!")
    with pytest.raises(DicomStreamError, match="final block"):
        engine.list_elements(good[:-6])
    # pydicom's own deflated file ends with a gzip-style trailer (CRC-32, size): accepted
    engine.list_elements(get_testdata_file("image_dfl.dcm"))
    tagstream.check_deflated(get_testdata_file("image_dfl.dcm"))


def test_inflating_is_capped(engine, limits):
    bomb = payloads.deflated_bomb(64 << 20)
    limits(max_inflated=8 << 20)
    with pytest.raises(DicomStreamError, match="larger than 8388608 bytes"):
        engine.list_elements(bomb)


def test_the_ingest_check_refuses_bombs_by_size_and_ratio(tmp_path):
    path = tmp_path / "bomb.dcm"
    path.write_bytes(payloads.deflated_bomb(2 << 30))  # 2 MB -> 2 GiB
    with pytest.raises(PayloadTooLarge, match="inflates to more than 134217728"):
        parsing.check_deflated(str(path), 128 << 20, 1000)
    with pytest.raises(PayloadTooLarge, match="more than 209"):  # 100 x ~2 MB
        parsing.check_deflated(str(path), 1 << 40, 100)
    path.write_bytes(payloads.deflated_dicom(trailing=b"xy"))
    with pytest.raises(InvalidDicom, match="garbage"):
        parsing.check_deflated(str(path), 1 << 30, 100)
    path.write_bytes(payloads.deflated_dicom())
    parsing.check_deflated(str(path), 1 << 30, 100)
    path.write_bytes(b"\0" * 200)  # not deflated at all: nothing to do
    parsing.check_deflated(str(path), 1 << 30, 100)


def test_check_deflated_memory_stays_flat(tmp_path):
    import resource

    path = tmp_path / "bomb.dcm"
    path.write_bytes(payloads.deflated_bomb(1 << 30))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InflateLimitError):
        tagstream.check_deflated(str(path), max_size=1 << 29)  # inflates 512 MB, keeps none
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB


# -- claimed sizes -------------------------------------------------------------------------------
def test_codestream_dimensions():
    assert codestream_dimensions(payloads.jpeg(8, 8)) == (8, 8, 1)
    assert codestream_dimensions(payloads.jpeg(claim=(65535, 65000))) == (65535, 65000, 1)
    siz = b"\xff\x4f\xff\x51" + struct.pack(">HHIIIIIIIIH", 41, 0, 70000, 60000, 0, 0, 64, 64, 0, 0, 3)
    assert codestream_dimensions(siz) == (60000, 70000, 3)
    assert codestream_dimensions(b"not an image") is None


def test_compressed_pixel_claims_are_refused_at_ingest(tmp_path):
    path = tmp_path / "claim.dcm"
    path.write_bytes(payloads.jpeg_dicom(65535, 65535))
    with pytest.raises(InvalidDicom, match="larger than this box accepts"):
        parsing.check_pixel_claim(str(path), parsing.read_identity(str(path)), 100_000_000)
    path.write_bytes(payloads.native_claim_dicom(65535, 65535))  # native: its bytes decide
    parsing.check_pixel_claim(str(path), parsing.read_identity(str(path)), 100_000_000)


def test_the_encoded_frame_head_is_found_without_decoding(tmp_path):
    path = tmp_path / "inner.dcm"
    path.write_bytes(payloads.jpeg_dicom(8, 8, claim=(65535, 65535)))
    header = pixels.read_pixel_header(str(path))
    assert codestream_dimensions(pixels.encoded_frame_head(str(path), header, 0)) == (65535, 65535, 1)
    native = tmp_path / "native.dcm"
    native.write_bytes(payloads.native_claim_dicom(8, 8))
    assert pixels.encoded_frame_head(str(native), pixels.read_pixel_header(str(native)), 0) is None


def test_zlib_sanity_of_the_bomb_builder():
    stream = payloads.deflate_bomb_stream(8 << 20, b"head")
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    out = d.decompress(stream)
    assert d.eof and out[:4] == b"head" and len(out) == 4 + (8 << 20) and not out[4:].strip(b"\0")
