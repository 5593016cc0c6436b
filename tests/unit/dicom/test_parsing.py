"""read_identity (the engine-based ingest reader) against the pydicom-based reader it replaced.

The reference below is the previous implementation of ``read_identity``
(pydicom.dcmread up to pixel data); the stored strings must not change.
"""
import dataclasses
import io
import os
import warnings

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataelem import DataElement
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from slicebox.dicom import parsing
from slicebox.errors import InvalidDicom
from tests.factories import make_dataset, make_dicom_bytes


def _reference_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(_reference_text(v) for v in value)
    return str(value).strip().rstrip("\x00")


def reference_identity(path):
    """The pydicom-based read_identity as it was before the engine served ingest."""
    with open(path, "rb") as fh:
        if not parsing.has_part10_prefix(fh.read(132)):
            raise InvalidDicom("no preamble")
        fh.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001
            raise InvalidDicom(f"malformed DICOM: {exc}") from None
    meta = getattr(ds, "file_meta", None)
    tsuid = _reference_text(getattr(meta, "TransferSyntaxUID", "")) if meta is not None else ""
    if not tsuid:
        raise InvalidDicom("no transfer syntax")
    values = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for keyword, field_name in parsing.IDENTITY_KEYWORDS.items():
                values[field_name] = _reference_text(ds.get(keyword))
    except Exception as exc:  # noqa: BLE001
        raise InvalidDicom(f"malformed DICOM attribute: {exc}") from None
    for keyword in parsing.REQUIRED:
        uid = values[parsing.IDENTITY_KEYWORDS[keyword]]
        if not uid or not parsing.is_valid_uid(uid):
            raise InvalidDicom(f"bad {keyword}")
    values["transfer_syntax_uid"] = tsuid
    return dataclasses.asdict(parsing.DicomIdentity(**values))


def _write(tmp_path, data, name="x.dcm"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _both(path):
    try:
        ref = reference_identity(path)
    except InvalidDicom:
        ref = None
    try:
        new = dataclasses.asdict(parsing.read_identity(path))
    except InvalidDicom:
        new = None
    return ref, new


def test_keyword_table_matches_the_dictionary():
    from pydicom.datadict import tag_for_keyword

    assert set(parsing.IDENTITY_TAGS) == set(parsing.IDENTITY_KEYWORDS)
    for keyword, tag in parsing.IDENTITY_TAGS.items():
        assert tag_for_keyword(keyword) == tag, keyword


@pytest.mark.parametrize("path", sorted(p for p in set(get_testdata_files()) if os.path.isfile(p)), ids=os.path.basename)
def test_same_identity_as_pydicom_for_every_shipped_file(path):
    ref, new = _both(path)
    assert new == ref


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
                                DeflatedExplicitVRLittleEndian])
def test_same_identity_for_every_uncompressed_syntax(tmp_path, ts):
    ds = make_dataset(PatientName="Doe^John^^Dr", ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
                      InstanceNumber="  12", PatientAge="042Y", StationName="ST1 ")
    ref, new = _both(_write(tmp_path, make_dicom_bytes(ds, ts)))
    assert new is not None and new == ref
    assert new["patient_name"] == "Doe^John^^Dr"
    assert new["image_type"] == "ORIGINAL\\PRIMARY\\AXIAL"
    assert new["instance_number"] == "12"
    assert new["transfer_syntax_uid"] == ts


@pytest.mark.parametrize("charset,name", [
    ("ISO_IR 100", "Müller^Jörg"),
    ("ISO_IR 192", "Ωμέγα^Δέλτα"),
    ("ISO 2022 IR 87", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎"),
    (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎"),
])
def test_same_identity_with_character_sets(tmp_path, charset, name):
    ds = make_dataset(SpecificCharacterSet=charset, PatientName=name, StudyDescription=name.split("^")[0])
    ref, new = _both(_write(tmp_path, make_dicom_bytes(ds)))
    assert new is not None and new == ref


def test_padding_and_multi_values_as_stored_before(tmp_path):
    ds = make_dataset()
    # raw values with odd padding that pydicom would not write itself
    ds[0x00100020] = DataElement(0x00100020, "LO", b" PID 7 \x00")
    ds[0x00080008] = DataElement(0x00080008, "CS", b"DERIVED \\ SECONDARY\\\\X ")
    ds[0x00081010] = DataElement(0x00081010, "SH", b"\tST\n")
    ds[0x00200013] = DataElement(0x00200013, "IS", b"+0007  ")
    ref, new = _both(_write(tmp_path, make_dicom_bytes(ds)))
    assert new is not None and new == ref
    assert new["patient_id"] == "PID 7"
    assert new["image_type"] == "DERIVED\\SECONDARY\\\\X"


def test_compressed_syntax_is_read_from_the_header(tmp_path):
    from pydicom.encaps import encapsulate

    ds = make_dataset()
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    ref, new = _both(_write(tmp_path, make_dicom_bytes(ds, JPEGBaseline8Bit)))
    assert new is not None and new == ref
    assert new["transfer_syntax_uid"] == JPEGBaseline8Bit


def test_stops_before_what_it_does_not_need(tmp_path):
    # Garbage after Frame of Reference UID is never looked at.
    data = make_dicom_bytes()
    ident = parsing.read_identity(_write(tmp_path, data, "a.dcm"))
    pos = data.index(b"\x20\x00\x52\x00")  # (0020,0052) explicit VR LE
    vlen = int.from_bytes(data[pos + 6:pos + 8], "little")
    cut = pos + 8 + vlen
    # keep the next element's header (its tag says "past the stop"), then garbage
    broken = data[:cut + 12] + b"\xff" * 64
    assert parsing.read_identity(_write(tmp_path, broken, "b.dcm")) == ident


def _corrupt_vr(data, tag_bytes):
    pos = data.index(tag_bytes, 132)
    return data[:pos + 4] + b"\xff\xff" + data[pos + 6:]


@pytest.mark.parametrize("mutate,message", [
    (lambda d: b"hello world" * 20, "DICM"),
    (lambda d: d[:128] + b"DICX" + d[132:], "DICM"),
    (lambda d: _corrupt_vr(d, b"\x08\x00\x16\x00"), "malformed"),
    (lambda d: d[:200], ""),
])
def test_bad_files_raise_invalid_dicom(tmp_path, mutate, message):
    path = _write(tmp_path, mutate(make_dicom_bytes()))
    with pytest.raises(InvalidDicom) as info:
        parsing.read_identity(path)
    assert message in str(info.value)


def test_missing_transfer_syntax_is_invalid(tmp_path):
    ds = make_dataset()
    data = make_dicom_bytes(ds)
    ds2 = pydicom.dcmread(io.BytesIO(data))
    del ds2.file_meta.TransferSyntaxUID
    buf = io.BytesIO()
    ds2.save_as(buf, implicit_vr=False, little_endian=True)
    with pytest.raises(InvalidDicom, match="Transfer Syntax"):
        parsing.read_identity(_write(tmp_path, buf.getvalue()))


@pytest.mark.parametrize("keyword", parsing.REQUIRED)
def test_missing_or_invalid_uids_are_invalid(tmp_path, keyword):
    ds = pydicom.dcmread(io.BytesIO(make_dicom_bytes()))
    delattr(ds, keyword)
    buf = io.BytesIO()
    ds.save_as(buf)
    with pytest.raises(InvalidDicom, match=f"no {keyword}"):
        parsing.read_identity(_write(tmp_path, buf.getvalue(), "a.dcm"))
    ds = make_dataset(**{keyword: "1.2.abc"})
    with pytest.raises(InvalidDicom, match=f"{keyword} is not a valid UID"):
        parsing.read_identity(_write(tmp_path, make_dicom_bytes(ds), "b.dcm"))


def test_ingest_does_not_parse_with_pydicom(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("dcmread called on the ingest path")

    monkeypatch.setattr(pydicom, "dcmread", fail)
    monkeypatch.setattr(pydicom.filereader, "dcmread", fail)
    ident = parsing.read_identity(_write(tmp_path, make_dicom_bytes()))
    assert ident.patient_name == "Doe^John"
