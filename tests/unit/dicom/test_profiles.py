"""Profiles as data: the package table, option resolution, dummy values, tag paths."""
from __future__ import annotations

import csv
import itertools
import json
import os
import warnings

import pytest
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.tag import Tag
from pydicom.valuerep import validate_value

from slicebox.dicom import profiles
from slicebox.dicom.profiles import PRIVATE, TagMask, dummy_value, resolve
from slicebox.errors import BadRequest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SHARED = os.path.join(ROOT, "slicebox", "dicom", "data", "source")
CSV_PATH = os.path.join(SHARED, "ps315_annex_e.csv")

OPTION_NAMES = [o.name for o in profiles.OPTIONS if o.name != "BASIC_PROFILE"]
PATIENT_NAME, PATIENT_ID, PATIENT_SEX, PATIENT_AGE = 0x00100010, 0x00100020, 0x00100040, 0x00101010
STUDY_UID, STUDY_DESCRIPTION, STUDY_DATE = 0x0020000D, 0x00081030, 0x00080020


def _csv_rows() -> list[dict]:
    if not os.path.exists(CSV_PATH):
        pytest.skip(f"{CSV_PATH} not present")
    with open(CSV_PATH, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _expected(row: dict, names: set[str], vr: str) -> str:
    """An independent statement of the documented resolution rule, straight from the CSV."""
    columns = {o.column for o in profiles.OPTIONS if o.name in names and o.column}
    codes = [row[c] for c in sorted(columns) if row[c]] or [row["basic_profile"]]
    resolved = []
    for code in codes:
        if code == "X/Z/U*":
            resolved.append("K")
        elif vr == "SQ" and code == "D":
            resolved.append("C")  # dummy items: the items stay, their content cleaned
        elif vr == "SQ" and "/" in code:
            resolved.append("X")  # Type 3; a plan for an IOD requiring it chooses again
        elif "D" in code.split("/"):
            resolved.append("D")
        elif code == "X/Z":
            resolved.append("Z")
        else:
            resolved.append(code)
    return min(resolved, key="XZDUCK".index)


def _key_of(row: dict):
    if row["tag"] == "PRIVATE":
        return PRIVATE
    text = row["group"] + row["element"]
    return TagMask.parse(text) if "x" in text.lower() else int(text, 16)


def test_package_data_is_what_the_script_builds(tmp_path):
    _csv_rows()
    from slicebox.dicom.data import build_profiles

    out = tmp_path / "rebuilt.json"
    build_profiles.main(["--csv", CSV_PATH,
                         "--content-items", os.path.join(SHARED, "ps315_annex_e_content_items.csv"),
                         "--notice", os.path.join(SHARED, "ps315_annex_e.NOTICE"), "--out", str(out)])
    with open(profiles.DATA_FILE, encoding="utf-8") as fh:
        committed = json.load(fh)
    assert json.loads(out.read_text(encoding="utf-8")) == committed
    # the NOTICE travels with the data, as its terms require
    notice = os.path.join(os.path.dirname(profiles.DATA_FILE), "ps315_annex_e.NOTICE")
    with open(notice, encoding="utf-8") as a, open(os.path.join(SHARED, "ps315_annex_e.NOTICE"),
                                                   encoding="utf-8") as b:
        assert a.read() == b.read()


def test_every_csv_row_resolves_for_every_option_set():
    rows = _csv_rows()
    vrs = {a["tag"]: a["vr"] for a in profiles.table()["attributes"]}
    checked = 0
    for size in range(len(OPTION_NAMES) + 1):
        for combo in itertools.combinations(OPTION_NAMES, size):
            actions = resolve(combo)
            names = set(combo)
            for row in rows:
                key = _key_of(row)
                assert key in actions, (row["tag"], combo)
                assert actions[key] in profiles.ACTIONS
                vr = vrs.get((row["group"] + row["element"]).upper().replace("X", "x"), "")
                assert actions[key] == _expected(row, names, vr), (row["tag"], row["name"], combo)
                checked += 1
    assert checked == len(rows) * 2 ** len(OPTION_NAMES)


def test_basic_profile_on_identifying_attributes():
    actions = resolve([])
    assert actions[PATIENT_NAME] in ("Z", "D")
    assert actions[PATIENT_ID] in ("Z", "D")
    assert actions[STUDY_UID] == "U"
    assert actions[STUDY_DESCRIPTION] == "X"
    assert actions[PATIENT_SEX] in ("Z", "D", "X")
    assert actions[PATIENT_AGE] == "X"
    assert actions[PRIVATE] == "X"
    # masks from the table: curves and overlays
    assert actions[TagMask.parse("60xx3000")] == "X"
    assert actions[TagMask.parse("60xx4000")] == "X"
    assert actions[TagMask.parse("50xxxxxx")] == "X"


def test_options_change_what_they_name():
    assert resolve(["RETAIN_PATIENT_CHARACTERISTICS"])[PATIENT_SEX] == "K"
    assert resolve(["RETAIN_PATIENT_CHARACTERISTICS"])[PATIENT_AGE] == "K"
    assert resolve(["RETAIN_PATIENT_CHARACTERISTICS"])[PATIENT_NAME] in ("Z", "D")
    assert resolve(["RETAIN_UIDS"])[STUDY_UID] == "K"
    assert resolve(["CLEAN_DESCRIPTORS"])[STUDY_DESCRIPTION] == "C"
    assert resolve(["RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION"])[STUDY_DATE] == "K"
    assert resolve(["RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED_DATES"])[STUDY_DATE] == "C"
    # both date options: the more protective (shifted) wins
    both = ["RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION", "RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED_DATES"]
    assert resolve(both)[STUDY_DATE] == "C"
    assert resolve(["CLEAN_GRAPHICS"])[TagMask.parse("60xx3000")] == "C"
    # option names are case-insensitive and accepted as {"name": ...} objects
    assert resolve([{"name": "retain_uids"}])[STUDY_UID] == "K"


def test_conditional_actions_follow_the_documented_rule():
    actions = resolve([])
    assert actions[0x00081140] == "K"  # Referenced Image Sequence, X/Z/U*: kept, UIDs inside are U
    assert actions[0x00081155] == "U"  # Referenced SOP Instance UID
    assert actions[0x00080021] == "D"  # Series Date, X/D: a dummy keeps Type 1 valid
    assert actions[0x00081110] == "X"  # Referenced Study Sequence, X/Z: removed unless Type 2
    assert actions[0x0040A730] == "C"  # Content Sequence, D on a sequence: dummy items, content cleaned
    assert resolve(["CLEAN_STRUCTURED_CONTENT"])[0x0040A730] == "C"


def test_action_for_element_lookup():
    prof = profiles.profile([])
    assert prof.action_for(PATIENT_NAME) in ("Z", "D")
    assert prof.action_for(0x60023000) == "X"  # overlay data in another overlay group
    assert prof.action_for(0x50120020) == "X"  # any curve element
    assert prof.action_for(0x00091010, "ACME") == "X"  # private element
    assert prof.action_for(0x00090010, "ACME") == "X"  # private creator
    assert prof.action_for(0x00280010) == "K"  # Rows: not in the table
    # Retain Safe Private with the shipped (empty) safe list keeps no private data
    assert profiles.profile(["RETAIN_SAFE_PRIVATE"]).action_for(0x00091010, "ACME") == "X"


def test_safe_private_list_is_honoured(monkeypatch):
    data = dict(profiles.table())
    data["safe_private"] = [{"creator": "ACME 1.0", "group": "0009", "element": "10", "action": "K"}]
    monkeypatch.setattr(profiles, "table", lambda: data)
    profiles._profile.cache_clear()
    try:
        safe = profiles.profile(["RETAIN_SAFE_PRIVATE"])
        assert safe.action_for(0x00091010, "ACME 1.0") == "K"
        assert safe.action_for(0x00091110, "ACME 1.0") == "K"  # same element in another block
        assert safe.action_for(0x00091011, "ACME 1.0") == "X"
        assert safe.action_for(0x00091010, "OTHER") == "X"
        assert safe.action_for(0x00090010, "ACME 1.0") == "K"  # its creator stays
        assert profiles.profile([]).action_for(0x00091010, "ACME 1.0") == "X"
    finally:
        profiles._profile.cache_clear()


def test_option_list_and_parsing():
    names = [o.name for o in profiles.list_options()]
    assert names[0] == "BASIC_PROFILE"
    assert set(names) == {
        "BASIC_PROFILE", "RETAIN_SAFE_PRIVATE", "RETAIN_UIDS", "RETAIN_DEVICE_IDENTITY",
        "RETAIN_INSTITUTION_IDENTITY", "RETAIN_PATIENT_CHARACTERISTICS",
        "RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION", "RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED_DATES",
        "CLEAN_DESCRIPTORS", "CLEAN_STRUCTURED_CONTENT", "CLEAN_GRAPHICS"}
    ranks = [o.rank for o in profiles.list_options()]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert [o.name for o in profiles.parse_options(["RETAIN_UIDS"])] == ["BASIC_PROFILE", "RETAIN_UIDS"]
    with pytest.raises(BadRequest):
        profiles.parse_options(["NOT_AN_OPTION"])
    with pytest.raises(BadRequest):
        profiles.parse_options(["CLEAN_PIXEL_DATA"])
    for bad in ([["RETAIN_UIDS"]], [{"title": "x"}], [3]):
        with pytest.raises(BadRequest):
            profiles.profile(bad)
    prof = profiles.profile(["RETAIN_UIDS"])
    assert profiles.deidentification_method(prof) == "Basic Profile - Retain UIDs"
    assert [c[0] for c in profiles.deidentification_codes(prof)] == ["113100", "113110"]


VRS = ["AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL",
       "OV", "OW", "PN", "SH", "SL", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"]


@pytest.mark.parametrize("vr", VRS)
def test_dummy_value_is_valid_for_its_vr(vr):
    raw = dummy_value(vr)
    assert raw and len(raw) % 2 == 0
    element = convert_raw_data_element(RawDataElement(Tag(0x00990010), vr, len(raw), raw, 0, False, True))
    value = element.value
    if vr in ("DS", "IS"):
        value = str(value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_value(vr, value, "raise")


def test_dummy_value_edge_cases():
    assert dummy_value("US or SS") == dummy_value("US")
    assert dummy_value("OB or OW") == dummy_value("OB")
    assert dummy_value("SQ") == b""
    assert dummy_value("") == b""


def test_conditional_sequences_choose_by_their_type_in_the_iod():
    assert profiles.sequence_action("X/Z", "3") == "X"
    assert profiles.sequence_action("X/Z", "2") == "Z"
    assert profiles.sequence_action("X/Z/D", "2") == "Z"
    assert profiles.sequence_action("X/Z/D", "1") == "C"
    assert profiles.sequence_action("X/D", "2") == "C"
    assert profiles.sequence_action("X/D", "3") == "X"
    # from the dciodvfy-derived data: Acquisition Context Sequence is Type 2 in the DX IOD,
    # Referenced PPS Sequence in the SR Document Series, neither in CT
    assert profiles.sequence_types("1.2.840.10008.5.1.4.1.1.1.1")[0x00400555] == "2"
    assert profiles.sequence_types("1.2.840.10008.5.1.4.1.1.88.11")[0x00081111] == "2"
    assert profiles.sequence_types("1.2.840.10008.5.1.4.1.1.2") == {}
    prof = profiles.profile([])
    assert prof.conditional_sq[0x00081110] == "X/Z" and prof.conditional_sq[0x00081111] == "X/Z/D"
    assert 0x00081110 not in profiles.profile(["RETAIN_UIDS"]).conditional_sq  # the option decides: K
