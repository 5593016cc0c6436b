"""Tag paths: string form, OpenAPI tagPathTag JSON, masks."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.tagpath import (
    WILDCARD,
    TagPath,
    format_tag,
    format_tag_path,
    parse_tag,
    parse_tag_mask,
    parse_tag_path,
    tag_path_from_json,
    tag_path_to_json,
)


def test_parse_and_format():
    p = parse_tag_path("(0008,1115)[*].(0020,000E)")
    assert p == TagPath(0x0020000E, ((0x00081115, WILDCARD),))
    assert str(p) == "(0008,1115)[*].(0020,000E)"
    q = parse_tag_path("(0054,0012)[1].(0054,0013)[2].(0054,0015)")
    assert q.trunk == ((0x00540012, 1), (0x00540013, 2)) and q.depth == 2
    assert parse_tag_path("ReferencedSeriesSequence[1].SeriesInstanceUID") == parse_tag_path("(0008,1115)[1].(0020,000E)")
    assert parse_tag_path("(0010,0010)") == TagPath(0x00100010)
    assert format_tag(0x7FE00010) == "(7FE0,0010)"
    assert parse_tag("PatientName") == parse_tag("00100010") == parse_tag("(0010,0010)") == 0x00100010


def test_json_shape_matches_openapi():
    p = parse_tag_path("(0008,1115)[1].(0020,000E)")
    assert tag_path_to_json(p) == {"tag": 0x0020000E, "previous": {"tag": 0x00081115, "item": "1"}}
    deep = parse_tag_path("(0054,0012)[*].(0054,0013)[2].(0054,0015)")
    js = tag_path_to_json(deep)
    # the step next to the leaf is the innermost one
    assert js["previous"] == {"tag": 0x00540013, "item": "2", "previous": {"tag": 0x00540012, "item": "*"}}
    assert tag_path_from_json(js) == deep
    assert tag_path_to_json("(0010,0010)") == {"tag": 0x00100010}


def test_matching():
    p = parse_tag_path("(0008,1115)[*].(0020,000E)")
    assert p.matches(((0x00081115, 3),), 0x0020000E)
    assert not p.matches((), 0x0020000E)
    assert not parse_tag_path("(0008,1115)[2].(0020,000E)").matches(((0x00081115, 1),), 0x0020000E)


@pytest.mark.parametrize(
    "bad",
    ["", "(0008,1115).(0020,000E)", "(0008,1115)[0].(0020,000E)", "(0008,1115)[1]", "NoSuchKeyword", "(00G8,0010)", "a..b"],
)
def test_malformed_strings(bad):
    with pytest.raises(DicomStreamError):
        parse_tag_path(bad)


@pytest.mark.parametrize(
    "bad",
    [{}, {"tag": "x"}, {"tag": 1, "previous": {"tag": 2, "item": "0"}}, {"tag": 1, "previous": {"item": "1"}},
     {"tag": 1, "previous": "nope"}],
)
def test_malformed_json(bad):
    with pytest.raises(DicomStreamError):
        tag_path_from_json(bad)


def test_masks():
    assert parse_tag_mask("(60xx,3000)") == (0xFF00FFFF, 0x60003000)
    mask, value = parse_tag_mask("(50xx,xxxx)")
    assert 0x50123456 & mask == value and 0x51003000 & mask != value
    with pytest.raises(DicomStreamError):
        parse_tag_mask("(60x,3000)")


tags = st.integers(0, 0xFFFFFFFF)
steps = st.lists(st.tuples(tags, st.integers(0, 50)), max_size=5)


@given(tag=tags, trunk=steps)
def test_round_trips(tag, trunk):
    p = TagPath(tag, tuple(trunk))
    assert parse_tag_path(format_tag_path(p)) == p
    assert tag_path_from_json(tag_path_to_json(p)) == p
