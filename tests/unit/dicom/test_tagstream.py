"""The streaming engine against pydicom: every shipped file, generated datasets, malformed input."""
import io
import os
import struct
import warnings

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.tagstream import EditPlan

# Files the engine refuses on purpose although pydicom reads them leniently:
# each is truncated or carries a length past the end of its container.
KNOWN_REJECTED = {
    "MR_truncated.dcm": "pixel data runs past the end of the file",
    "rtplan_truncated.dcm": "a sequence runs past the end of the file",
    "DICOMDIR-nooffset": "an item length runs past its sequence",
    "no_meta.dcm": "starts one byte into an element; pydicom reads garbage tags from it",
}

NEW_SOP = "1.2.826.0.1.3680043.10.1234.99"
REMOVED = (0x00100030, 0x00081030, 0x0008103E, 0x00101010, 0x00080090)  # birth date, descriptions, age, ref. phys.


def _corpus():
    seen = {}
    for path in get_testdata_files():
        name = os.path.basename(path)
        if os.path.isfile(path) and not name.endswith((".txt", ".json", ".gz", ".icc", ".dump")) and name != "README":
            seen.setdefault(name, path)
    return sorted(seen.items())


CORPUS = _corpus()


def _pydicom_read(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data) if isinstance(data, bytes) else data, force=True)
        for _ in ds.iterall():
            pass
    return ds


def _plan():
    return (
        EditPlan()
        .remove(*REMOVED)
        .remove_mask("(60xx,3000)")
        .remove_private()
        .replace("PatientName", "ANON^PATIENT")
        .replace("SOPInstanceUID", NEW_SOP)
        .insert("(0012,0062)", "YES")
        .insert("(0012,0063)", "SLICEBOX TEST")
    )


def _apply_with_pydicom(ds):
    """The same edits as _plan(), done the pydicom way (the reference)."""

    def clean(dataset):
        for elem in list(dataset):
            tag = int(elem.tag)
            if tag & 0xFFFF == 0 or tag in REMOVED or tag >> 16 & 1 or tag & 0xFF00FFFF == 0x60003000:
                del dataset[elem.tag]
                continue
            if tag == 0x00100010:
                elem.value = "ANON^PATIENT"
            if tag == 0x00080018:  # replacing by tag applies at any depth
                elem.value = NEW_SOP
            if elem.VR == "SQ":
                for item in elem.value:
                    clean(item)

    clean(ds)
    if "SOPInstanceUID" in ds:
        if "MediaStorageSOPInstanceUID" in ds.file_meta:
            ds.file_meta.MediaStorageSOPInstanceUID = NEW_SOP
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "SLICEBOX TEST"
    return ds


def _assert_same(actual, expected, where="root"):
    assert sorted(actual.keys()) == sorted(expected.keys()), where
    for tag in expected.keys():
        a, e = actual[tag], expected[tag]
        if e.VR == "SQ":
            assert len(a.value) == len(e.value), (where, tag)
            for i, (ai, ei) in enumerate(zip(a.value, e.value)):
                _assert_same(ai, ei, "%s/%s[%d]" % (where, tag, i + 1))
        else:
            assert a.value == e.value, (where, tag)


@pytest.mark.parametrize("name,path", CORPUS, ids=[n for n, _ in CORPUS])
def test_corpus_rewrite_matches_pydicom(engine, name, path):
    if name in KNOWN_REJECTED:
        with pytest.raises(DicomStreamError):
            engine.rewrite(path, None, _plan())
        return
    try:
        original = _pydicom_read(path)
    except Exception:  # noqa: BLE001 - pydicom cannot read it either
        pytest.skip("pydicom cannot read %s" % name)
    if original.get("SOPInstanceUID") is None and not original.keys():
        pytest.skip("not a dataset")
    out = engine.rewrite(path, None, _plan()).data
    actual = _pydicom_read(out)
    expected = _apply_with_pydicom(original)
    _assert_same(actual, expected)
    if "MediaStorageSOPInstanceUID" in actual.file_meta:
        meta = {e.tag: e.value for e in actual.file_meta if e.tag != 0x00020000}
        assert meta == {e.tag: e.value for e in expected.file_meta if e.tag != 0x00020000}
        # the recomputed group length is what pydicom would write
        body = out[132 + 12:]
        assert actual.file_meta.FileMetaInformationGroupLength == _meta_body_length(body)
    # untouched root elements keep their exact bytes
    raw_in = _pydicom_read_raw(path)
    raw_out = _pydicom_read_raw(out)
    edited = {0x00100010, 0x00080018, 0x00120062, 0x00120063}
    for tag, elem in raw_in.items():
        vr = elem.VR or (dictionary_VR(tag) if dictionary_has_tag(tag) else "UN")
        if tag in edited or tag in REMOVED or tag & 0xFFFF == 0 or tag >> 16 & 1 or vr in ("SQ", "UN"):
            continue
        if hasattr(elem, "value") and tag in raw_out and isinstance(elem.value, bytes):
            assert raw_out[tag].value == elem.value, hex(tag)


def _meta_body_length(body):
    n = 0
    while n + 8 <= len(body) and body[n] == 2 and body[n + 1] == 0:
        vr = body[n + 4:n + 6]
        if vr in (b"OB", b"OW", b"UN", b"UT", b"SQ", b"UC", b"UR"):
            n += 12 + struct.unpack_from("<I", body, n + 8)[0]
        else:
            n += 8 + struct.unpack_from("<H", body, n + 6)[0]
    return n


def _pydicom_read_raw(source):
    from pydicom.filereader import read_partial

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp = open(source, "rb") if isinstance(source, str) else io.BytesIO(source)
        with fp:
            ds = read_partial(fp, force=True)
    return {int(t): e for t, e in ds._dict.items()}


@pytest.mark.parametrize("name,path", CORPUS, ids=[n for n, _ in CORPUS])
def test_corpus_identity_without_group_lengths(engine, name, path):
    """With no edits, files without group lengths come back byte for byte."""
    if name in KNOWN_REJECTED:
        return
    data = open(path, "rb").read()
    try:
        rows = engine.list_elements(data)
    except DicomStreamError:
        pytest.skip("not parseable")
    if any(r.tag & 0xFFFF == 0 and r.tag >> 16 != 2 for r in rows):
        return
    has_meta = data[128:132] == b"DICM"
    if b"1.2.840.10008.1.2.1.99" in data[:1024]:
        return  # deflated: re-compression changes the bytes, not the content
    out = engine.rewrite(data, None, None).data
    if has_meta and any(r.tag == 0x00020000 for r in rows):
        assert out == data
    elif not has_meta:
        assert out == data


def test_read_attributes_hierarchy(engine):
    path = get_testdata_file("CT_small.dcm", download=False)
    tags = ["PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]
    got = engine.read_attributes(path, tags)
    ds = pydicom.dcmread(path)
    assert got[0x00100010] == ("PN", str(ds.PatientName))
    assert got[0x0020000E].value == ds.SeriesInstanceUID
    assert got[0x00080018].value == ds.SOPInstanceUID
    assert set(got) == {0x00100010, 0x00100020, 0x0020000D, 0x0020000E, 0x00080018}


class _CountingStream:
    def __init__(self, data):
        self._f = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, n=-1):
        chunk = self._f.read(n)
        self.read_bytes += len(chunk)
        return chunk


def test_read_attributes_stops_early(engine):
    ds = _make_dataset()
    ds.PixelData = b"\0" * 2_000_000
    ds.Rows, ds.Columns, ds.BitsAllocated = 1000, 1000, 16
    data = _encode(ds, ExplicitVRLittleEndian)
    stream = _CountingStream(data)
    got = engine.read_attributes(stream, ["PatientID", "SeriesInstanceUID"])
    assert got[0x00100020].value == "ID1"
    assert stream.read_bytes < 100_000 < len(data)
    # a truncated stream before the stop point is an error, after it is fine
    assert engine.read_attributes(data[:2000], ["PatientID"])[0x00100020].value == "ID1"
    with pytest.raises(DicomStreamError):
        engine.read_attributes(data[:200], ["SeriesInstanceUID"])


def test_read_attributes_charset(engine):
    ds = _make_dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Buc^Jérôme"
    data = _encode(ds, ExplicitVRLittleEndian)
    assert "Jérôme".encode("latin-1") in data
    assert engine.read_attributes(data, ["PatientName"])[0x00100010].value == "Buc^Jérôme"
    # a str replacement is encoded in the dataset's character set
    out = engine.rewrite(data, None, EditPlan().replace("PatientName", "Åström")).data
    assert "Åström".encode("latin-1") in out
    assert _pydicom_read(out).PatientName == "Åström"


def test_list_elements_paths(engine):
    path = get_testdata_file("rtplan.dcm", download=False)
    rows = engine.list_elements(path)
    paths = {r.path: r for r in rows}
    ds = pydicom.dcmread(path)
    first = ds.BeamSequence[0]
    row = paths["(300A,00B0)[1].(300A,00C2)"]
    assert row.value == first.BeamName and row.depth == 1 and row.keyword == "BeamName"
    assert paths["(300A,00B0)"].vr == "SQ"
    nested = [r for r in rows if r.depth == 2]
    assert nested and all(r.path.count("[") == 2 for r in nested)
    assert not any(r.tag == 0x7FE00010 for r in rows)


# ---------------------------------------------------------------------------
# Paths, inserts into items, defined-length sequences
# ---------------------------------------------------------------------------


def _make_dataset():
    ds = Dataset()
    ds.PatientName = "Doe^John"
    ds.PatientID = "ID1"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.5"
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ref = Dataset()
    ref.SeriesInstanceUID = "9.8.7"
    ref.PatientName = "Nested^Name"
    ref2 = Dataset()
    ref2.SeriesInstanceUID = "9.8.6"
    ds.ReferencedSeriesSequence = Sequence([ref, ref2])
    return ds


def _encode(ds, ts):
    ds = ds.copy() if hasattr(ds, "copy") else ds
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _defined_length_sequences(data):
    """Re-encode an explicit LE file's sequences with defined lengths (by hand)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    from pydicom.filewriter import write_dataset
    from pydicom.filebase import DicomBytesIO

    def encode(dataset):
        out = b""
        for elem in dataset:
            if elem.VR == "SQ":
                items = b""
                for item in elem.value:
                    body = encode(item)
                    items += struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
                out += struct.pack("<HH", elem.tag.group, elem.tag.elem) + b"SQ\0\0" + struct.pack("<I", len(items)) + items
            else:
                fp = DicomBytesIO()
                fp.is_little_endian, fp.is_implicit_VR = True, False
                single = Dataset()
                single.add(elem)
                write_dataset(fp, single)
                out += fp.getvalue()
        return out

    head_len = data.index(b"\x08\x00") if False else None
    meta_end = 132 + 12 + struct.unpack_from("<I", data, 140)[0]
    return data[:meta_end] + encode(ds)


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_paths_and_item_inserts(engine, ts):
    data = _encode(_make_dataset(), ts)
    plan = (
        EditPlan()
        .remove("(0008,1115)[2].(0020,000E)")
        .replace("(0008,1115)[*].(0010,0010)", "X^Y")
        .insert("(0008,1115)[1].(0020,0013)", "7")
        .insert("(0008,1115)[2].(0010,0020)", "P2")
    )
    out = engine.rewrite(data, None, plan).data
    ds = _pydicom_read(out)
    assert ds.file_meta.TransferSyntaxUID == ts
    seq = ds.ReferencedSeriesSequence
    assert seq[0].SeriesInstanceUID == "9.8.7" and seq[0].PatientName == "X^Y" and seq[0].InstanceNumber == 7
    assert "SeriesInstanceUID" not in seq[1] and seq[1].PatientID == "P2"
    assert "PatientName" not in seq[1]  # replace only touches existing elements
    assert ds.PatientName == "Doe^John"


def test_defined_length_sequences_get_new_lengths(engine):
    data = _defined_length_sequences(_encode(_make_dataset(), ExplicitVRLittleEndian))
    assert b"\xff\xff\xff\xff" not in data
    plan = EditPlan().remove("PatientName").insert("(0008,1115)[1].(0020,0013)", "12")
    out = engine.rewrite(data, None, plan).data
    assert b"\xff\xff\xff\xff" not in out
    ds = _pydicom_read(out)
    assert [i.get("InstanceNumber") for i in ds.ReferencedSeriesSequence] == [12, None]
    assert "PatientName" not in ds.ReferencedSeriesSequence[0] and "PatientName" not in ds


def test_keep_only_and_values(engine):
    data = _encode(_make_dataset(), ExplicitVRLittleEndian)
    plan = EditPlan().keep_only(["PatientID", "SOPInstanceUID", "SOPClassUID"]).insert("Rows", 512)
    ds = _pydicom_read(engine.rewrite(data, None, plan).data)
    assert sorted(ds.dir()) == ["PatientID", "Rows", "SOPClassUID", "SOPInstanceUID"]
    assert ds.Rows == 512
    # callables see the old encoded value (consistent UID mapping)
    plan = EditPlan().replace("SeriesInstanceUID", lambda old: old.rstrip(b"\0").decode() + ".1")
    ds = _pydicom_read(engine.rewrite(data, None, plan).data)
    assert ds.SeriesInstanceUID == "1.2.3.4.5.1"
    assert [i.SeriesInstanceUID for i in ds.ReferencedSeriesSequence] == ["9.8.7.1", "9.8.6.1"]
    # odd values are padded
    out = engine.rewrite(data, None, EditPlan().replace("PatientID", "ABC")).data
    assert b"ABC " in out
    # empty value on a sequence empties it
    ds = _pydicom_read(engine.rewrite(data, None, EditPlan().replace("ReferencedSeriesSequence", b"")).data)
    assert len(ds.ReferencedSeriesSequence) == 0


def test_sop_instance_uid_follows_into_meta(engine):
    data = _encode(_make_dataset(), ExplicitVRLittleEndian)
    ds = _pydicom_read(engine.rewrite(data, None, EditPlan().replace("SOPInstanceUID", "1.2.3.999")).data)
    assert ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3.999" == ds.SOPInstanceUID


def test_files_and_copy_file_range(engine, tmp_path):
    ds = _make_dataset()
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel = 512, 512, 16, 1
    ds.PixelData = bytes(range(256)) * 2048
    src = tmp_path / "in.dcm"
    src.write_bytes(_encode(ds, ExplicitVRLittleEndian))
    dst = tmp_path / "out.dcm"
    result = engine.rewrite(str(src), str(dst), EditPlan().remove("PatientName"))
    assert result.data is None and result.length == dst.stat().st_size
    out = _pydicom_read(str(dst))
    assert out.PixelData == ds.PixelData and "PatientName" not in out
    with open(src, "rb") as fin, open(tmp_path / "o2.dcm", "wb") as fout:
        engine.rewrite(fin, fout, EditPlan().remove("PatientName"))
    assert (tmp_path / "o2.dcm").read_bytes() == dst.read_bytes()


def test_bare_dataset_with_transfer_syntax(engine):
    ds = _make_dataset()
    buf = io.BytesIO()
    from pydicom.filewriter import write_dataset
    from pydicom.filebase import DicomBytesIO

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)
    bare = fp.getvalue()
    got = engine.read_attributes(bare, ["PatientID"], transfer_syntax=ImplicitVRLittleEndian)
    assert got[0x00100020].value == "ID1"
    out = engine.rewrite(bare, None, EditPlan().remove("PatientID"), transfer_syntax=ImplicitVRLittleEndian).data
    assert out == bare.replace(b"\x10\x00\x20\x00\x04\x00\x00\x00ID1 ", b"")
    del buf


# ---------------------------------------------------------------------------
# Malformed input
# ---------------------------------------------------------------------------


def _ok_or_stream_error(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except DicomStreamError:
        pass


def test_malformed_inputs(engine):
    good = _encode(_make_dataset(), ExplicitVRLittleEndian)
    cases = {
        "truncated": good[:-3],
        "length past end": good[:-20] + b"\x10\x00\x10\x00PN\xff\x7f",
        "garbage tag": good + b"\xfe\xff\x00\xe0\x00\x00\x00\x00",
        "bad vr": good + b"\x10\x00\x11\x00\x01\x02\x02\x00ab",
        "undefined length LO": good + b"\x10\x00\x11\x00LO\xff\xff",
    }
    for label, data in cases.items():
        with pytest.raises(DicomStreamError):
            engine.rewrite(data, None, None)
        with pytest.raises(DicomStreamError):
            engine.list_elements(data)


def test_absurd_nesting(engine):
    item = b""
    for _ in range(200):
        body = item
        item = struct.pack("<HH", 0x0008, 0x1115) + b"SQ\0\0" + b"\xff\xff\xff\xff"
        item += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + body
        item += struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    for fn in (engine.list_elements, engine.rewrite):
        with pytest.raises(DicomStreamError, match="deeper"):
            fn(item, transfer_syntax=ExplicitVRLittleEndian)


# ---------------------------------------------------------------------------
# Hypothesis: generated datasets and edits against pydicom
# ---------------------------------------------------------------------------

TEXT = st.text(alphabet="ABCDEFGHIJ^0123456789", min_size=0, max_size=12)
UIDS = st.from_regex(r"1\.2\.[1-9][0-9]{0,5}(\.[1-9][0-9]{0,3}){0,3}", fullmatch=True)
POOL = [
    ("PatientName", TEXT), ("PatientID", TEXT), ("StudyDescription", TEXT),
    ("SeriesInstanceUID", UIDS), ("AccessionNumber", TEXT), ("Rows", st.integers(0, 65535)),
    ("SliceThickness", st.sampled_from(["1.5", "2", "0.625"])),
]


@st.composite
def datasets(draw, depth=0):
    ds = Dataset()
    for keyword, strategy in draw(st.lists(st.sampled_from(POOL), max_size=6, unique_by=lambda p: p[0])):
        setattr(ds, keyword, draw(strategy))
    if draw(st.booleans()):
        ds.add_new(0x00091010, "LO", draw(TEXT))
    if depth < 2 and draw(st.booleans()):
        ds.ReferencedSeriesSequence = Sequence(draw(st.lists(datasets(depth=depth + 1), max_size=3)))
    return ds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ds=datasets(),
    ts=st.sampled_from([ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]),
    remove=st.lists(st.sampled_from([p[0] for p in POOL]), max_size=3),
    private=st.booleans(),
    new_name=st.one_of(st.none(), TEXT),
    item_insert=st.booleans(),
    defined=st.booleans(),
)
def test_generated_datasets_match_pydicom(engine, ds, ts, remove, private, new_name, item_insert, defined):
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3"
    data = _encode(ds, ts)
    if defined and ts == ExplicitVRLittleEndian:
        data = _defined_length_sequences(data)
    plan = EditPlan().remove(*remove).insert("(0012,0062)", "YES")
    expected = _pydicom_read(data)
    if private:
        plan.remove_private()
    if new_name is not None:
        plan.replace("PatientName", new_name)
    if item_insert:
        plan.insert("(0008,1115)[*].(0020,0013)", 5)

    def apply(d, depth):
        for keyword in remove:
            if keyword in d:
                delattr(d, keyword)
        if private:
            d.remove_private_tags()
        if new_name is not None and "PatientName" in d:
            d.PatientName = new_name
        if item_insert and depth == 1:
            d.InstanceNumber = 5
        if "ReferencedSeriesSequence" in d:
            for item in d.ReferencedSeriesSequence:
                apply(item, depth + 1)

    apply(expected, 0)
    expected.PatientIdentityRemoved = "YES"
    actual = _pydicom_read(engine.rewrite(data, None, plan).data)
    _assert_same(actual, expected)
