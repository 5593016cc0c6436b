"""Inserting sequences with items, and inserting one path twice (both engines)."""
import io

import pydicom
import pytest
from factories import make_dicom_bytes

from slicebox.dicom.tagstream import EditPlan

SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"]


@pytest.mark.parametrize("ts", SYNTAXES)
def test_insert_sequence_with_items(engine, ts):
    data = make_dicom_bytes(transfer_syntax=ts)
    items = [[(0x00080100, "SH", "113100"), (0x00080102, "SH", "DCM"), (0x00080104, "LO", "Basic")],
             [(0x00080100, "SH", "113110"), (0x00080102, "SH", "DCM"), (0x00080104, "LO", "Retain UIDs")]]
    out = engine.rewrite(data, None, EditPlan().insert("(0012,0064)", items, vr="SQ")).data
    ds = pydicom.dcmread(io.BytesIO(out))
    codes = [(i.CodeValue, i.CodingSchemeDesignator, i.CodeMeaning) for i in ds.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM", "Basic"), ("113110", "DCM", "Retain UIDs")]
    original = pydicom.dcmread(io.BytesIO(data))
    del ds.DeidentificationMethodCodeSequence
    assert ds == original


def test_inserting_a_path_twice_keeps_one_element_with_the_last_value(engine):
    data = make_dicom_bytes(PatientName="Real^Name")
    plan = EditPlan().insert("(0010,0010)", "First^Value").insert("(0010,0010)", "Second^Value")
    out = engine.rewrite(data, None, plan).data
    names = [e for e in engine.list_elements(out) if e.tag == 0x00100010]
    assert len(names) == 1
    assert pydicom.dcmread(io.BytesIO(out)).PatientName == "Second^Value"
