"""The compiled engine reuses a per-thread read buffer for small files: nothing may leak between calls."""
import threading

import pydicom
import pytest

from slicebox.dicom.tagstream import EditPlan
from tests.factories import make_dataset, make_dicom_bytes


def _files(tmp_path, n):
    paths = []
    for i in range(n):
        p = tmp_path / f"in{i}.dcm"
        p.write_bytes(make_dicom_bytes(make_dataset(rows=16 + i, columns=16, PatientID=f"P{i}")))
        paths.append(str(p))
    return paths


def test_nested_call_from_a_plan_callable_does_not_clobber_the_outer_file(engine, tmp_path):
    a, b = _files(tmp_path, 2)

    def peek(old):
        # re-enter the engine on another file while the outer file is being rewritten
        engine.rewrite(b, str(tmp_path / "inner.dcm"), EditPlan().replace("PatientID", "INNER"))
        return engine.read_attributes(b, ["PatientID"])[0x00100020].value + "-X"

    engine.rewrite(a, str(tmp_path / "out.dcm"), EditPlan().replace("PatientName", peek))
    out = pydicom.dcmread(str(tmp_path / "out.dcm"))
    src = pydicom.dcmread(a)
    assert out.PatientName == "P1-X"
    assert out.PatientID == "P0" and out.Rows == src.Rows and out.PixelData == src.PixelData
    assert pydicom.dcmread(str(tmp_path / "inner.dcm")).PatientID == "INNER"


def test_threads_rewriting_at_once_get_their_own_bytes(engine, tmp_path):
    paths = _files(tmp_path, 6)
    errors = []

    def work(k):
        try:
            for rep in range(15):
                for i, p in enumerate(paths):
                    dst = str(tmp_path / f"t{k}_{i}.dcm")
                    engine.rewrite(p, dst, EditPlan().replace("PatientName", f"T{k}"))
                    ds = pydicom.dcmread(dst)
                    assert ds.PatientID == f"P{i}" and ds.Rows == 16 + i and ds.PatientName == f"T{k}"
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_failed_call_releases_the_buffer(engine, tmp_path):
    (good,) = _files(tmp_path, 1)
    bad = tmp_path / "bad.dcm"
    data = open(good, "rb").read()
    bad.write_bytes(data[:132] + b"\x02\x00\x10\x00UI\xff\x7f" + data[140:])
    with pytest.raises(ValueError):
        engine.rewrite(str(bad), str(tmp_path / "x.dcm"))
    engine.rewrite(good, str(tmp_path / "y.dcm"))
    assert pydicom.dcmread(str(tmp_path / "y.dcm")).PatientID == "P0"
