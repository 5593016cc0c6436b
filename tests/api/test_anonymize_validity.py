"""Issue 16: anonymized output that an IOD validator accepts, on a varied corpus.

Every file of the corpus (pydicom's bundled files: overlays, ECG waveform, SR,
RT, multi-frame, compressed, big endian, implicit VR, deflate and the
character-set files; plus generated files, one per IOD and sequence case) is
uploaded, anonymized through ``POST /images/{id}/anonymized`` with the basic
profile and with each option, and checked with dicom3tools' ``dciodvfy``.  The
output may have no error or warning the original did not have, except those
the standard's table itself causes (:data:`TABLE_CAUSED`, each with its row).
``dciodvfy`` of the originals is cached for the session, and the outputs of one
file are validated in parallel threads.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pydicom
import pydicom.data
import pytest
from factories import make_dataset, make_dicom_bytes
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from slicebox.dicom import profiles

DCIODVFY = shutil.which("dciodvfy")
OPTIONS = [None] + [o.name for o in profiles.list_options() if o.name != "BASIC_PROFILE"]
DATA = os.path.dirname(pydicom.data.__file__)

PYDICOM_FILES = [
    "examples_overlay.dcm", "waveform_ecg.dcm", "test-SR.dcm", "reportsi.dcm", "rtplan.dcm", "rtstruct.dcm",
    "rtdose.dcm", "CT_small.dcm", "MR_small.dcm", "liver_1frame.dcm", "examples_ybr_color.dcm",
    "JPEG2000.dcm", "MR_small_RLE.dcm", "image_dfl.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
    "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_dcmtk.dcm",
]
CHARSET_FILES = ["chrKoreanMulti.dcm", "chrJapMulti.dcm", "chrRuss.dcm", "chrJapMultiExplicitIR6.dcm", "chrFrenMulti.dcm", "chrH31.dcm",
                 "chrX1.dcm", "chrGreek.dcm", "chrArab.dcm"]

# Messages the table itself causes, with the row that causes them (PS3.15 Table E.1-1, basic profile):
TABLE_CAUSED = {
    # (0020,0010) Study ID: Z -- an empty Study ID is what the table asks for
    "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study ID",
    # (0008,0020) Study Date: Z (kept only under the Retain Longitudinal options)
    "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study Date",
    # (0008,0030) Study Time: Z (kept only under the Retain Longitudinal options)
    "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study Time",
}


def _normalize(line: str) -> str:
    """A message without the values it quotes (the anonymized values differ by design)."""
    line = re.sub(r" = <.*", "", line)
    line = re.sub(r'"[^"]*"', '""', line)
    line = re.sub(r"(ReferencedSOPInstanceUID) \S+", r"\1 UID", line)
    line = re.sub(r"[0-9]+(\.[0-9]+){2,}", "UID", line)
    return line.strip()


def dciodvfy(data: bytes) -> set[str]:
    with tempfile.NamedTemporaryFile(suffix=".dcm") as fh:
        fh.write(data)
        fh.flush()
        run = subprocess.run([DCIODVFY, fh.name], capture_output=True, text=True, errors="replace", timeout=60)
    return {_normalize(line) for line in (run.stdout + run.stderr).splitlines()
            if line.startswith(("Error", "Warning"))}


_originals: dict[str, set[str]] = {}  # dciodvfy of the originals, once per session


def _original_messages(name: str, data: bytes) -> set[str]:
    if name not in _originals:
        _originals[name] = dciodvfy(data)
    return _originals[name]


def _read(name: str) -> bytes:
    folder = "charset_files" if name.startswith("chr") else "test_files"
    with open(os.path.join(DATA, folder, name), "rb") as fh:
        return fh.read()


def _save(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _ct_with_sequences() -> bytes:
    """CT: Referenced Study (X/Z, Type 3 1-n), Referenced PPS (X/Z/D), a whole overlay, other sequences."""
    ds = pydicom.dcmread(io.BytesIO(_read("CT_small.dcm")))
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.9.7777.55"
    ds.ReferencedStudySequence = Sequence([ref])
    pps = Dataset()
    pps.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"
    pps.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.9.7777.56"
    ds.ReferencedPerformedProcedureStepSequence = Sequence([pps])
    ds.InstitutionCodeSequence = Sequence([_code("INST7", "99LOCAL", "Saint Example")])  # X/Z/D
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60000022, "LO", "Overlay of Doe")
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", b"\xff\x00" * 4)
    return _save(ds)


def _sr_with_observers() -> bytes:
    """SR: Verifying Observer Sequence (D), Referenced PPS Sequence (Type 2 in SR Document Series)."""
    ds = pydicom.dcmread(io.BytesIO(_read("test-SR.dcm")))
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "VERIFIED"
    observer = Dataset()
    observer.VerifyingObserverName = "Watson^John"
    observer.VerifyingOrganization = "Baker Street Clinic"
    observer.VerificationDateTime = "20200101120000"
    observer.VerifyingObserverIdentificationCodeSequence = Sequence()
    ds.VerifyingObserverSequence = Sequence([observer])
    pps = Dataset()
    pps.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"
    pps.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.9.7777.57"
    ds.ReferencedPerformedProcedureStepSequence = Sequence([pps])
    return _save(ds)


def _ecg_with_context() -> bytes:
    """ECG: Acquisition Context Sequence (X/Z, Type 2 in waveform IODs) with an item."""
    ds = pydicom.dcmread(io.BytesIO(_read("waveform_ecg.dcm")))
    item = Dataset()
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = Sequence([_code("121106", "DCM", "Comment")])
    item.TextValue = "Patient Doe was agitated"
    ds.AcquisitionContextSequence = Sequence([item])
    return _save(ds)


def _ct_bare() -> bytes:
    """A CT from make_dataset (every hierarchy attribute, dates, names)."""
    return make_dicom_bytes(make_dataset(PatientName="Gen^Erated", ReferringPhysicianName="Ref^Doc",
                                         InstitutionName="Gen Hospital"))


GENERATED = {"ct_sequences": _ct_with_sequences, "sr_observers": _sr_with_observers,
             "ecg_context": _ecg_with_context, "ct_generated": _ct_bare}
CORPUS = PYDICOM_FILES + CHARSET_FILES + sorted(GENERATED)


def _corpus_bytes(name: str) -> bytes:
    return GENERATED[name]() if name in GENERATED else _read(name)


@pytest.fixture
def db_kind():
    """The validator checks files, not databases: SQLite only (the API suite covers PostgreSQL)."""
    return "sqlite"


@pytest.mark.skipif(DCIODVFY is None and os.environ.get("CI", "").lower() != "true",
                    reason="dciodvfy (Debian package dicom3tools) is not installed")
@pytest.mark.parametrize("name", CORPUS)
def test_anonymized_output_is_as_valid_as_the_original(client, upload, name):
    data = _corpus_bytes(name)
    r = upload(data)
    assert r.status_code in (200, 201), r.get_data(as_text=True)
    image_id = r.get_json()["id"]
    outputs = {}
    for option in OPTIONS:
        body = {"profile": {"options": [{"name": option}] if option else []}}
        r = client.post(f"/api/images/{image_id}/anonymized", json=body)
        assert r.status_code == 200, (option, r.get_data(as_text=True))
        outputs[option or "BASIC_PROFILE"] = r.get_data()
    before = _original_messages(name, data)
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(outputs, pool.map(dciodvfy, outputs.values())))
    new = {option: sorted(messages - before - TABLE_CAUSED) for option, messages in results.items()}
    assert not any(new.values()), {k: v for k, v in new.items() if v}
    for option, out in outputs.items():
        ds = pydicom.dcmread(io.BytesIO(out))
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.LongitudinalTemporalInformationModified == _expected_longitudinal(option)


def _expected_longitudinal(option: str) -> str:
    if option == "RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED_DATES":
        return "MODIFIED"
    if option == "RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION":
        return "UNMODIFIED"
    return "REMOVED"


def _anonymized(client, upload, data: bytes, options=()) -> tuple[bytes, pydicom.Dataset]:
    r = upload(data)
    assert r.status_code in (200, 201), r.get_data(as_text=True)
    r = client.post(f"/api/images/{r.get_json()['id']}/anonymized",
                    json={"profile": {"options": [{"name": o} for o in options]}})
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_data(), pydicom.dcmread(io.BytesIO(r.get_data()))


def test_sequences_follow_their_action_codes(client, upload):
    data, out = _anonymized(client, upload, _ct_with_sequences())
    assert "ReferencedStudySequence" not in out  # X/Z, Type 3 in the CT IOD: removed, not emptied
    # X/Z/D, Type 3 in the CT IOD: removed
    assert "ReferencedPerformedProcedureStepSequence" not in out and "InstitutionCodeSequence" not in out
    assert b"Saint Example" not in data and b"INST7" not in data
    assert b"1.2.826.0.1.3680043.9.7777.56" not in data

    data, out = _anonymized(client, upload, _sr_with_observers())
    [observer] = out.VerifyingObserverSequence  # D: a dummy item
    assert b"Watson" not in data and b"Baker Street" not in data and b"20200101120000" not in data
    assert str(observer.VerifyingObserverName) and observer.VerificationDateTime
    assert len(out.ContentSequence) > 0  # D: the content tree keeps its structure
    assert out.ReferencedPerformedProcedureStepSequence == []  # X/Z/D, Type 2 in SR Document Series: Z
    assert b"1.2.826.0.1.3680043.9.7777.57" not in data

    data, out = _anonymized(client, upload, _ecg_with_context())
    assert out.AcquisitionContextSequence == []  # X/Z, Type 2 in the ECG IOD: empty, present
    assert b"agitated" not in data
    # X/D, in a user-optional module: removed with it
    assert "WaveformAnnotationSequence" not in out


def test_overlays_go_or_stay_as_a_whole(client, upload):
    source = _ct_with_sequences()
    data, out = _anonymized(client, upload, source)
    assert not [e for e in out if e.tag.group == 0x6000]
    data, out = _anonymized(client, upload, source, ["CLEAN_GRAPHICS"])
    group = {e.tag.element for e in out if e.tag.group == 0x6000}
    assert {0x0010, 0x0011, 0x0040, 0x0050, 0x0100, 0x0102, 0x3000} <= group
    assert out[0x60003000].value == b"\xff\x00" * 4
    assert b"Overlay of Doe" not in data and 0x0022 in group


@pytest.mark.parametrize("options", [[], ["RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION"],
                                     ["RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED_DATES"],
                                     ["RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION",
                                      "RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED_DATES"]])
def test_longitudinal_temporal_information_modified_says_what_happened_to_dates(client, upload, options):
    _, out = _anonymized(client, upload, _ct_bare(), options)
    expected = ("MODIFIED" if "RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED_DATES" in options
                else "UNMODIFIED" if options else "REMOVED")
    assert out.LongitudinalTemporalInformationModified == expected
    if expected == "UNMODIFIED":
        assert out.StudyDate == "20240101"
    elif expected == "MODIFIED":
        assert out.StudyDate not in ("", "20240101")
    else:
        assert out.StudyDate == ""


@pytest.mark.parametrize("variant", ["meta_without_preamble", "bare_explicit", "bare_implicit", "bare_big_endian"])
def test_files_without_preamble_or_file_meta_are_stored_as_proper_part10(client, upload, variant):
    from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

    ds = make_dataset(PatientName="No^Preamble", PatientID="NOPRE")
    if variant == "meta_without_preamble":
        data = make_dicom_bytes(ds)[128 + 4:]
    else:
        syntax = {"bare_explicit": None, "bare_implicit": ImplicitVRLittleEndian,
                  "bare_big_endian": ExplicitVRBigEndian}[variant]
        buf = io.BytesIO()
        ds.save_as(buf, implicit_vr=syntax == ImplicitVRLittleEndian,
                   little_endian=syntax != ExplicitVRBigEndian, enforce_file_format=False)
        data = buf.getvalue()
    assert data[128:132] != b"DICM"
    r = upload(data)
    assert r.status_code == 201, r.get_data(as_text=True)
    stored = client.get(f"/api/images/{r.get_json()['id']}").get_data()
    assert stored[:128] == b"\0" * 128 and stored[128:132] == b"DICM"
    back = pydicom.dcmread(io.BytesIO(stored))
    assert back.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert back.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert str(back.PatientName) == "No^Preamble" and back.Rows == 8
    wanted_syntax = {"bare_implicit": "1.2.840.10008.1.2", "bare_big_endian": "1.2.840.10008.1.2.2"}
    assert back.file_meta.TransferSyntaxUID == wanted_syntax.get(variant, "1.2.840.10008.1.2.1")
    if variant != "bare_big_endian":  # pydicom writes big endian OW pixels unswapped: compare the rest
        expected = [[(r * 8 + c) * 7 % 4096 for c in range(8)] for r in range(8)]  # make_dataset's pixels
        assert back.pixel_array.tolist() == expected
    # and it anonymizes like any other file
    r = client.post(f"/api/images/{r.get_json()['id']}/anonymized", json={"profile": {"options": []}})
    assert r.status_code == 200 and b"No^Preamble" not in r.get_data()


def test_garbage_without_preamble_is_still_refused(upload):
    r = upload(b"this is not dicom at all, not even a dataset" * 10)
    assert r.status_code == 400
