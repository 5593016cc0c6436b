"""Fuzz the engine with mutated bytes: it answers or raises DicomStreamError, never anything else.

Bounded: a fixed number of Hypothesis examples per seed file, no deadline.
"""
import io


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.tagstream import EditPlan

SEEDS = [
    open(get_testdata_file(name, download=False), "rb").read()
    for name in ("CT_small.dcm", "rtplan.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm",
                 "JPEG2000.dcm", "UN_sequence.dcm", "nested_priv_SQ.dcm", "MR_small_implicit.dcm")
]
# Headers only: mutations in pixel data prove nothing.
SEEDS = [s[:6000] if len(s) > 6000 and b"1.2.840.10008.1.2.1.99" not in s[:400] else s for s in SEEDS]

PLAN = (EditPlan().remove("PatientName", "(300A,00B0)[*].(300A,00C2)").remove_private()
        .replace("SOPInstanceUID", "1.2.3").insert("(0012,0062)", "YES")
        .insert("(300A,00B0)[1].(0020,0013)", 3))


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "set32", "cut", "insert"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set32":
            value = draw(st.sampled_from([0, 1, 3, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFEE000, 0xFFFEE0DD]))
            data[pos:pos + 4] = value.to_bytes(4, "little")
        elif op == "cut":
            del data[pos:]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except DicomStreamError as exc:
        return ("error", type(exc))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated())
def test_mutated_bytes_never_crash(engine, data):
    result = _call(engine.rewrite, data, None, PLAN)
    _call(engine.list_elements, data)
    _call(engine.read_attributes, data, ["PatientID", "SeriesInstanceUID"])
    _call(engine.read_attributes, io.BytesIO(data), None)
    if not isinstance(result, tuple) or result[0] != "error":
        # whatever the engine writes, it can read back
        _call(engine.list_elements, result.data)
        assert len(result.data) < len(data) + 4096
