"""The compiled engine loaded (unless switched off) and agrees with its pure-Python twin."""
import importlib
import io
import os
import random

import pytest
from pydicom.data import get_testdata_files

from slicebox import _speedups
from slicebox.dicom import _tagstream_py, tagstream
from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.tagstream import EditPlan

NO_EXT = _speedups.disabled()


def test_compiled_module_loaded():
    """Fails when the build silently fell back to Python (convention 11)."""
    if NO_EXT:
        assert tagstream.IMPLEMENTATION == "python"
        assert tagstream.rewrite is _tagstream_py.rewrite
        return
    importlib.import_module("slicebox._speedups.tagstream")  # raises if not built
    assert tagstream.IMPLEMENTATION == "compiled"
    assert tagstream.rewrite is not _tagstream_py.rewrite


def test_switch_selects_twin(monkeypatch):
    import slicebox.dicom.tagstream as selector

    monkeypatch.setenv("SLICEBOX_NO_EXTENSIONS", "1")
    try:
        reloaded = importlib.reload(selector)
        assert reloaded.IMPLEMENTATION == "python"
    finally:
        monkeypatch.undo()
        importlib.reload(selector)


def _compiled():
    if NO_EXT:
        pytest.skip("extensions switched off")
    return importlib.import_module("slicebox._speedups.tagstream")


def _outcome(fn, *args, **kwargs):
    try:
        result = fn(*args, **kwargs)
    except DicomStreamError as exc:
        return ("error", type(exc).__name__)
    if isinstance(result, list):
        return [tuple(r) for r in result]
    if isinstance(result, tuple):
        return tuple(result)
    return result


CORPUS = sorted({p for p in get_testdata_files() if os.path.isfile(p)})
PLAN = (EditPlan().remove("(0010,0030)", "(0008,1115)[*].(0020,000E)").remove_mask("(60xx,3000)")
        .remove_private().replace("PatientName", "Anon^Ymous").replace("SOPInstanceUID", "1.2.3.4")
        .insert("(0012,0062)", "YES").insert("(0008,1115)[1].(0020,0013)", 3))


def test_parity_on_pydicom_files():
    compiled = _compiled()
    for path in CORPUS:
        data = open(path, "rb").read()
        for fn in ("list_elements", "read_attributes"):
            assert _outcome(getattr(compiled, fn), data) == _outcome(getattr(_tagstream_py, fn), data), (path, fn)
        a = _outcome(compiled.rewrite, data, None, PLAN)
        b = _outcome(_tagstream_py.rewrite, data, None, PLAN)
        assert a == b, path


def test_parity_on_mutated_bytes():
    compiled = _compiled()
    rng = random.Random(1234)
    seeds = [open(p, "rb").read()[:8000] for p in CORPUS if p.endswith(".dcm")][:40]
    for _ in range(1500):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data)
        assert _outcome(compiled.rewrite, data, None, PLAN) == _outcome(_tagstream_py.rewrite, data, None, PLAN)
        assert _outcome(compiled.list_elements, data) == _outcome(_tagstream_py.list_elements, data)


def test_errors_are_the_shared_class():
    compiled = _compiled()
    with pytest.raises(DicomStreamError):
        compiled.rewrite(b"\0" * 132 + b"\x08\x00\x10\x00LO\xff\x00ab", None, None)
    with pytest.raises(DicomStreamError):
        compiled.read_attributes(io.BytesIO(b"\x08\x00\x10\x00LO\x10\x00ab"), ["PatientID"])
