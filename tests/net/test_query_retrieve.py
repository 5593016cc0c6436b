"""C-FIND and C-MOVE on the box's listener, asked by dcmtk's findscu and movescu."""
from __future__ import annotations

import os

import pydicom
import pytest
from pydicom.uid import generate_uid

from dicom_peers import free_port, run, tool, write_ct
from slicebox.services import scus

both_databases = pytest.mark.parametrize("db_kind", ["sqlite", "postgres"], indirect=True)
sqlite_only = pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)


@pytest.fixture
def loaded(scp, tmp_path):
    """The box holds 2 patients: Alpha (2 studies: CT+MR series, CT) and Beta (1 study, 1 series)."""
    services, row, port = scp
    folder = tmp_path / "load"
    folder.mkdir()
    uids = {"a1": generate_uid(), "a2": generate_uid(), "b1": generate_uid()}
    series = {"a1ct": generate_uid(), "a1mr": generate_uid(), "a2ct": generate_uid(), "b1ct": generate_uid()}
    files = []
    layout = [("Alpha^Anna", "PA", "a1", "a1ct", "CT", "20240105", 3),
              ("Alpha^Anna", "PA", "a1", "a1mr", "MR", "20240105", 2),
              ("Alpha^Anna", "PA", "a2", "a2ct", "CT", "20230710", 1),
              ("Beta^Bert", "PB", "b1", "b1ct", "CT", "20240220", 2)]
    for name, pid, study, ser, modality, date, count in layout:
        for i in range(count):
            files.append(write_ct(str(folder / f"{ser}{i}.dcm"), patient=name, patient_id=pid,
                                  study_uid=uids[study], series_uid=series[ser], number=i + 1,
                                  Modality=modality, StudyDate=date))
    result = run([tool("storescu"), "-aec", "SLICEBOX", "127.0.0.1", str(port), *files])
    assert result.returncode == 0, result.stderr[-1000:]
    return services, port, uids, series


def _find(port: int, tmp_path, model: str, *keys: str) -> list[pydicom.Dataset]:
    out = tmp_path / f"find{len(os.listdir(tmp_path))}"
    out.mkdir()
    args = [tool("findscu"), model, "-aec", "SLICEBOX", "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    result = run(args + ["127.0.0.1", str(port)])
    assert result.returncode == 0, result.stderr[-2000:]
    return [pydicom.dcmread(str(out / f)) for f in sorted(os.listdir(out))]


@both_databases
def test_patient_root_patient_level_with_wildcard(loaded, tmp_path):
    _, port, _, _ = loaded
    found = _find(port, tmp_path, "-P", "QueryRetrieveLevel=PATIENT", "PatientName=alpha*", "PatientID",
                  "PatientBirthDate")
    assert [(str(d.PatientName), d.PatientID, d.PatientBirthDate) for d in found] == \
        [("Alpha^Anna", "PA", "19800101")]
    everyone = _find(port, tmp_path, "-P", "QueryRetrieveLevel=PATIENT", "PatientName", "PatientID")
    assert sorted(d.PatientID for d in everyone) == ["PA", "PB"]


@both_databases
def test_patient_root_study_level_with_date_range(loaded, tmp_path):
    _, port, uids, _ = loaded
    found = _find(port, tmp_path, "-P", "QueryRetrieveLevel=STUDY", "PatientID=PA",
                  "StudyDate=20240101-20241231", "StudyInstanceUID", "StudyDescription", "NumberOfStudyRelatedInstances")
    assert [(d.StudyInstanceUID, d.StudyDate, d.StudyDescription) for d in found] == \
        [(uids["a1"], "20240105", "Net study")]
    assert "NumberOfStudyRelatedInstances" in found[0]  # asked for and unknown: returned empty
    open_ended = _find(port, tmp_path, "-P", "QueryRetrieveLevel=STUDY", "PatientID=PA", "StudyDate=-20231231",
                       "StudyInstanceUID")
    assert [d.StudyInstanceUID for d in open_ended] == [uids["a2"]]


@both_databases
def test_study_root_study_and_series_levels(loaded, tmp_path):
    _, port, uids, series = loaded
    studies = _find(port, tmp_path, "-S", "QueryRetrieveLevel=STUDY", "PatientName", "StudyInstanceUID",
                    f"StudyInstanceUID={uids['a1']}\\{uids['b1']}")
    assert sorted((str(d.PatientName), d.StudyInstanceUID) for d in studies) == \
        sorted([("Alpha^Anna", uids["a1"]), ("Beta^Bert", uids["b1"])])
    found = _find(port, tmp_path, "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={uids['a1']}",
                  "Modality", "SeriesInstanceUID")
    assert sorted((d.Modality, d.SeriesInstanceUID) for d in found) == \
        sorted([("CT", series["a1ct"]), ("MR", series["a1mr"])])
    mr = _find(port, tmp_path, "-S", "QueryRetrieveLevel=SERIES", "Modality=MR", "SeriesInstanceUID")
    assert [d.SeriesInstanceUID for d in mr] == [series["a1mr"]]


@sqlite_only
def test_study_root_has_no_patient_level(loaded):
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    _, port, _, _ = loaded
    ae = AE(ae_title="FINDER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="SLICEBOX")
    assert assoc.is_established
    try:
        query = pydicom.Dataset()
        query.QueryRetrieveLevel = "PATIENT"
        query.PatientID = ""
        responses = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
    finally:
        assoc.release()
    assert [r[0].Status for r in responses] == [0xA900]


@sqlite_only
def test_movescu_retrieves_a_study_to_a_registered_scu(loaded, tmp_path):
    services, port, uids, series = loaded
    out = tmp_path / "moved"
    out.mkdir()
    move_port = free_port()
    scus.add_scu(services, "workstation", "MOVESCU", "127.0.0.1", move_port)
    result = run([tool("movescu"), "-S", "-aet", "MOVESCU", "-aec", "SLICEBOX", "-aem", "MOVESCU",
                  "+P", str(move_port), "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
                  "-k", f"StudyInstanceUID={uids['a1']}", "127.0.0.1", str(port)])
    assert result.returncode == 0, result.stderr[-2000:]
    moved = [pydicom.dcmread(str(out / f)) for f in os.listdir(out)]
    assert len(moved) == 5
    assert {d.SeriesInstanceUID for d in moved} == {series["a1ct"], series["a1mr"]}


@sqlite_only
def test_movescu_to_an_unknown_destination_is_refused(loaded, tmp_path):
    _, port, uids, _ = loaded
    out = tmp_path / "nowhere"
    out.mkdir()
    move_port = free_port()
    result = run([tool("movescu"), "-S", "-aet", "MOVESCU", "-aec", "SLICEBOX", "-aem", "NOBODY",
                  "+P", str(move_port), "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
                  "-k", f"StudyInstanceUID={uids['b1']}", "127.0.0.1", str(port)])
    assert os.listdir(out) == []
    text = (result.stdout + result.stderr).lower()
    assert "movedestinationunknown" in text.replace(" ", ""), text[-1500:]
