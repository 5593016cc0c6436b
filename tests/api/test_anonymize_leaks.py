"""Issue 4, "Done when" 1: no planted identifying value survives where the profile says it must go.

A dataset carries a unique, searchable value in every attribute of the PS3.15
Annex E table that has one text-like VR (at the root and again at depth 2,
inside a kept and inside a removed sequence), plus a private block, overlay
data and curve data.  It is anonymized through ``POST /images/{id}/anonymized``
with the basic profile and with the basic profile plus each option, and the
output BYTES are searched.  The expectation comes from the resolved profile
(slicebox.dicom.profiles, the oracle); hard-coded spot checks that do not depend
on the table guard the oracle itself.
"""
from __future__ import annotations

import datetime
import io

import pydicom
import pytest
from factories import make_dataset, make_dicom_bytes

from anon_planting import (CURVE_DESCRIPTION_TOKEN, CURVE_TOKEN, INNER_SEQUENCE, KEPT_SEQUENCE,
                           OVERLAY_COMMENT_TOKEN, OVERLAY_TOKEN, PRIVATE_TOKEN, REMOVED_SEQUENCE, plant,
                           planted_values)
from slicebox.dicom import profiles

OPTIONS = [o.name for o in profiles.list_options() if o.name != "BASIC_PROFILE"]
PLANTED = planted_values()
BY_KEYWORD = {p.keyword: p for p in PLANTED if p.keyword}


def anonymize(client, image_id: int, options=(), tag_values=()):
    body = {"profile": {"options": [{"name": n} for n in options]},
            "tagValues": [{"tagPath": {"tag": t}, "value": v} for t, v in tag_values]}
    return client.post(f"/api/images/{image_id}/anonymized", json=body)


def expected_present(prof: profiles.Profile, tag: int, vr: str) -> bool:
    """The oracle: does the planted (original) value of ``tag`` stay in the output?"""
    action = prof.action_for(tag)
    if action == "K":
        return True
    if action == "C":
        # 'keep' is a time under Modified Dates (the shift is whole days); 'shift' and 'dummy' replace.
        return profiles.clean_kind(vr, prof) == "keep"
    return False


@pytest.fixture
def planted_image(upload):
    r = upload(make_dicom_bytes(plant(make_dataset())))
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()["id"]


def check_deidentification_attributes(out: pydicom.Dataset, options) -> None:
    assert out.PatientIdentityRemoved == "YES"
    assert out.DeidentificationMethod
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    wanted = {profiles.OPTIONS_BY_NAME[n].code for n in ("BASIC_PROFILE", *options)}
    assert codes == wanted
    assert all(item.CodingSchemeDesignator == "DCM" and item.CodeMeaning
               for item in out.DeidentificationMethodCodeSequence)
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID


@pytest.mark.parametrize("option", [None] + OPTIONS)
def test_no_planted_value_survives_where_the_profile_removes_it(client, planted_image, option):
    options = [option] if option else []
    r = anonymize(client, planted_image, options)
    assert r.status_code == 200, r.get_data(as_text=True)
    data = r.get_data()
    prof = profiles.profile(options)

    leaked, lost = [], []
    for p in PLANTED:
        present = p.found_in(data)
        if expected_present(prof, p.tag, p.vr):
            if not present:
                lost.append(f"{p.tag:08X} {p.keyword} {p.vr} {prof.action_for(p.tag)}")
        elif present:
            leaked.append(f"{p.tag:08X} {p.keyword} {p.vr} {prof.action_for(p.tag)}")
    assert not leaked, f"{len(leaked)} planted values survived: {leaked[:20]}"
    assert not lost, f"{len(lost)} retained values are missing: {lost[:20]}"
    # Private blocks go under every option (none is on the safe list), overlays and
    # curves too; Clean Graphics keeps the overlay bitmap (a whole overlay) and
    # cleans the overlay's text.
    for token in (PRIVATE_TOKEN, b"ACME", OVERLAY_COMMENT_TOKEN, CURVE_TOKEN, CURVE_DESCRIPTION_TOKEN):
        assert token not in data, token
    assert (OVERLAY_TOKEN in data) == (option == "CLEAN_GRAPHICS")

    out = pydicom.dcmread(io.BytesIO(data))
    check_deidentification_attributes(out, options)
    # The kept sequence is really kept (so the absence above proves nested cleaning),
    # the removed one is really gone.
    assert KEPT_SEQUENCE in out and len(out[KEPT_SEQUENCE].value[0][INNER_SEQUENCE].value) == 1
    assert REMOVED_SEQUENCE not in out
    for elem in out.iterall():  # every value decodes as its VR says
        _ = elem.value


def test_basic_profile_spot_checks(client, planted_image):
    data = anonymize(client, planted_image).get_data()
    out = pydicom.dcmread(io.BytesIO(data))
    for keyword in ("PatientName", "PatientID", "InstitutionName", "StudyDescription",
                    "PatientBirthDate", "AccessionNumber", "ReferringPhysicianName", "StudyInstanceUID",
                    "SOPInstanceUID", "PatientSex", "StudyDate"):
        assert not BY_KEYWORD[keyword].found_in(data), keyword
    assert "ANONYMOUS" in str(out.PatientName) and out.PatientID
    assert out.StudyInstanceUID != BY_KEYWORD["StudyInstanceUID"].value
    assert out.SOPInstanceUID.startswith("2.25.")
    # inside the kept sequence, at depth 2, the same rules hold
    inner = out.ReferencedImageSequence[0].PurposeOfReferenceCodeSequence[0]
    assert "PatientName" not in inner or str(inner.PatientName) != BY_KEYWORD["PatientName"].value
    assert inner.get("InstitutionName") != BY_KEYWORD["InstitutionName"].value
    assert inner.get("SOPInstanceUID") != BY_KEYWORD["SOPInstanceUID"].value
    assert inner.get("SOPInstanceUID") == out.SOPInstanceUID  # one UID, one pseudonym at any depth


def test_retain_patient_characteristics_keeps_sex_and_age(client, planted_image):
    data = anonymize(client, planted_image, ["RETAIN_PATIENT_CHARACTERISTICS"]).get_data()
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.PatientSex == BY_KEYWORD["PatientSex"].value
    assert out.PatientAge == BY_KEYWORD["PatientAge"].value
    assert not BY_KEYWORD["PatientName"].found_in(data)
    assert not BY_KEYWORD["PatientBirthDate"].found_in(data)


def test_retain_uids_keeps_every_uid(client, planted_image):
    data = anonymize(client, planted_image, ["RETAIN_UIDS"]).get_data()
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.StudyInstanceUID == BY_KEYWORD["StudyInstanceUID"].value
    assert out.SeriesInstanceUID == BY_KEYWORD["SeriesInstanceUID"].value
    assert out.SOPInstanceUID == BY_KEYWORD["SOPInstanceUID"].value
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID


def test_retain_device_and_institution_identity(client, planted_image):
    data = anonymize(client, planted_image, ["RETAIN_DEVICE_IDENTITY"]).get_data()
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.StationName == BY_KEYWORD["StationName"].value
    assert out.DeviceSerialNumber == BY_KEYWORD["DeviceSerialNumber"].value
    assert not BY_KEYWORD["InstitutionName"].found_in(data)
    data = anonymize(client, planted_image, ["RETAIN_INSTITUTION_IDENTITY"]).get_data()
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.InstitutionName == BY_KEYWORD["InstitutionName"].value
    assert not BY_KEYWORD["StationName"].found_in(data)


def test_clean_descriptors_replaces_descriptions(client, planted_image):
    data = anonymize(client, planted_image, ["CLEAN_DESCRIPTORS"]).get_data()
    out = pydicom.dcmread(io.BytesIO(data))
    assert "StudyDescription" in out and out.StudyDescription != BY_KEYWORD["StudyDescription"].value
    assert not BY_KEYWORD["StudyDescription"].found_in(data)


def test_full_dates_keep_dates(client, planted_image):
    data = anonymize(client, planted_image, ["RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION"]).get_data()
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.StudyDate == BY_KEYWORD["StudyDate"].value
    assert out.StudyTime == BY_KEYWORD["StudyTime"].value
    assert not BY_KEYWORD["PatientName"].found_in(data)


def _date(text: str) -> datetime.date:
    return datetime.datetime.strptime(text, "%Y%m%d").date()


def test_modified_dates_shift_by_one_offset_per_patient(client, upload):
    modified = ["RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED_DATES"]
    first = upload(PatientName="Shift^Pat", PatientID="SHIFT1", StudyInstanceUID="1.2.3.41",
                   SeriesInstanceUID="1.2.3.41.1", StudyDate="20200315", SeriesDate="20200316",
                   PatientBirthDate="19610704").get_json()["id"]
    second = upload(PatientName="Shift^Pat", PatientID="SHIFT1", StudyInstanceUID="1.2.3.42",
                    SeriesInstanceUID="1.2.3.42.1", StudyDate="20230101", SeriesDate="20230101",
                    PatientBirthDate="19610704").get_json()["id"]
    other = upload(PatientName="Other^Pat", PatientID="SHIFT2", StudyInstanceUID="1.2.3.43",
                   SeriesInstanceUID="1.2.3.43.1", StudyDate="20200315").get_json()["id"]
    a = pydicom.dcmread(io.BytesIO(anonymize(client, first, modified).get_data()))
    b = pydicom.dcmread(io.BytesIO(anonymize(client, second, modified).get_data()))
    c = pydicom.dcmread(io.BytesIO(anonymize(client, other, modified).get_data()))
    shift_a = _date(a.StudyDate) - _date("20200315")
    shift_b = _date(b.StudyDate) - _date("20230101")
    assert a.StudyDate != "20200315" and shift_a.days != 0
    assert shift_a == shift_b  # one offset per patient: the interval between studies survives
    assert _date(a.SeriesDate) - _date("20200316") == shift_a
    assert _date(b.StudyDate) - _date(a.StudyDate) == _date("20230101") - _date("20200315")
    assert a.StudyInstanceUID != b.StudyInstanceUID
    assert c.StudyDate != "20200315"
    # the shift is kept with the patient: anonymizing again gives the same date
    again = pydicom.dcmread(io.BytesIO(anonymize(client, first, modified).get_data()))
    assert again.StudyDate == a.StudyDate


def test_modified_dates_keep_utc_offsets_and_ranges_valid(client, upload):
    modified = ["RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED_DATES"]
    image = upload(PatientName="Zone^Pat", PatientID="ZONE1", StudyDate="20200315",
                   AcquisitionDateTime="20200315101112.5-0500",
                   ContentDate="20200101\\20200315").get_json()["id"]
    out = pydicom.dcmread(io.BytesIO(anonymize(client, image, modified).get_data()))
    shift = _date(out.StudyDate) - _date("20200315")
    assert shift.days != 0
    expected = (_date("20200315") + shift).strftime("%Y%m%d")
    # a negative UTC offset is an offset, not a date range: it stays, the date moves
    assert out.AcquisitionDateTime == f"{expected}101112.5-0500"
    assert list(out.ContentDate) == [(_date("20200101") + shift).strftime("%Y%m%d"), expected]


def test_a_safe_private_list_never_keeps_unsafe_private_attributes(client, upload, monkeypatch):
    """With a non-empty safe list, private attributes it does not name must still go."""
    data = dict(profiles.table())
    data["safe_private"] = [{"creator": "ACME", "group": "0009", "element": "01", "action": "K"}]
    monkeypatch.setattr(profiles, "table", lambda: data)
    profiles._profile.cache_clear()
    try:
        ds = make_dataset()
        ds.add_new(0x00090010, "LO", "ACME")
        ds.add_new(0x00091001, "LO", "LKSAFEVALUE01")
        ds.add_new(0x00110010, "LO", "OTHERCO")
        ds.add_new(0x00111001, "LO", "LKUNSAFEPRIV01")
        image = upload(make_dicom_bytes(ds)).get_json()["id"]
        r = anonymize(client, image, ["RETAIN_SAFE_PRIVATE"])
        assert r.status_code == 200
        assert b"LKUNSAFEPRIV01" not in r.get_data() and b"OTHERCO" not in r.get_data()
    finally:
        profiles._profile.cache_clear()
