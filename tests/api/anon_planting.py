"""Planted-value datasets for the anonymization leak tests (shared by the two test modules).

Every attribute of the PS3.15 Annex E table with a single text-like VR gets a
unique value that can be found in the output bytes; the same values are
planted again at depth 2 inside a kept and inside a removed sequence, next to
a private block, overlay data and curve data.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from slicebox.dicom import profiles

TEXT_VRS = ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR",
            "UT")
# VRs whose planted value is made of digits: searched with digit boundaries so
# that a random digit run inside an anonymous 2.25 UID cannot match by chance.
_NUMERIC_VRS = ("AS", "DA", "DS", "DT", "IS", "TM", "UI")

KEPT_SEQUENCE = 0x00081140     # Referenced Image Sequence: X/Z/U* -> kept, UIDs inside mapped
REMOVED_SEQUENCE = 0x0040A078  # Author Observer Sequence: X under every option
INNER_SEQUENCE = 0x0040A170    # Purpose of Reference Code Sequence: not in the table (kept)
PRIVATE_CREATOR = 0x00090010
PRIVATE_VALUE = 0x00091001
OVERLAY_DATA = 0x60003000
OVERLAY_COMMENTS = 0x60004000
CURVE_DATA = 0x50003000
CURVE_DESCRIPTION = 0x50000022
PRIVATE_TOKEN = b"LKPRIVATE0001"
OVERLAY_TOKEN = b"LKOVERLAYDATA0001"
OVERLAY_COMMENT_TOKEN = b"LKOVERLAYCOMMENT01"
CURVE_TOKEN = b"LKCURVEDATA00001"
CURVE_DESCRIPTION_TOKEN = b"LKCURVEDESCR0001"


@dataclass(frozen=True)
class Planted:
    tag: int
    vr: str
    keyword: str
    value: str  # as set on the dataset
    token: bytes  # what is searched in the output

    def found_in(self, data: bytes) -> bool:
        if self.vr in _NUMERIC_VRS:
            return re.search(rb"(?<![0-9.])" + re.escape(self.token), data) is not None
        return self.token in data


def plantable_attributes() -> list[tuple[int, str, str]]:
    """(tag, vr, keyword) of every table attribute with one text-like VR, groups 0000 and 0002 excluded."""
    rows = []
    for attr in profiles.table()["attributes"]:
        if "x" in attr["tag"].lower() or attr["vr"] not in TEXT_VRS:
            continue
        tag = int(attr["tag"], 16)
        if tag >> 16 in (0x0000, 0x0002):  # command set / file meta: never in a stored dataset
            continue
        rows.append((tag, attr["vr"], attr["keyword"]))
    return rows


def _value(i: int, vr: str, counters: dict) -> tuple[str, bytes]:
    k = counters[vr] = counters.get(vr, -1) + 1
    token = f"LK{i:04d}"
    if vr == "PN":
        return f"{token}^X", token.encode()
    if vr == "UI":
        value = f"1.2.826.0.1.3680043.9.7777.{1000 + i}"
        return value, value.encode()
    if vr == "DA":
        # 11 years apart: a date shifted by at most ten years never equals another planted date.
        value = f"{1200 + 11 * k:04d}{1 + k % 12:02d}{1 + k % 28:02d}"
        return value, value.encode()
    if vr == "DT":
        value = f"{1201 + 11 * k:04d}{1 + k % 12:02d}{1 + k % 28:02d}101112.{770000 + i}"
        return value, value.encode()
    if vr == "TM":
        value = f"{k % 24:02d}{k % 60:02d}{(k * 7) % 60:02d}.{660000 + i}"
        return value, value.encode()
    if vr == "AS":
        value = f"{901 + k:03d}Y"
        return value, value.encode()
    if vr == "DS":
        value = f"{8800000000 + i}.25"
        return value, value.encode()
    if vr == "IS":
        value = f"{1880000000 + i}"
        return value, value.encode()
    if vr == "UR":
        value = f"http://{token.lower()}.example/"
        return value, token.lower().encode()
    if vr in ("LO", "LT", "ST", "UC", "UT", "SH"):
        return f"{token} X", token.encode()
    return token, token.encode()  # AE, CS


def planted_values() -> list[Planted]:
    counters: dict = {}
    out = []
    for i, (tag, vr, keyword) in enumerate(plantable_attributes(), start=1):
        value, token = _value(i, vr, counters)
        out.append(Planted(tag, vr, keyword, value, token))
    return out


def _fill(ds: Dataset, planted: list[Planted]) -> Dataset:
    for p in planted:
        ds.add_new(p.tag, p.vr, p.value)
    ds.add_new(PRIVATE_CREATOR, "LO", "ACME")
    ds.add_new(PRIVATE_VALUE, "LO", PRIVATE_TOKEN.decode())
    return ds


def _depth2(planted: list[Planted], outer_tag: int) -> Sequence:
    inner_item = _fill(Dataset(), planted)
    inner_item.add_new(OVERLAY_COMMENTS, "LT", OVERLAY_COMMENT_TOKEN.decode())
    outer_item = Dataset()
    outer_item.add_new(0x00081150, "UI", "1.2.840.10008.5.1.4.1.1.2")
    outer_item.add_new(INNER_SEQUENCE, "SQ", Sequence([inner_item]))
    return Sequence([outer_item])


def plant(ds: Dataset, planted: list[Planted] | None = None) -> Dataset:
    """Put every planted value into ``ds`` (root and depth 2), plus private, overlay and curve data."""
    planted = planted if planted is not None else planted_values()
    _fill(ds, planted)
    ds.add_new(KEPT_SEQUENCE, "SQ", _depth2(planted, KEPT_SEQUENCE))
    ds.add_new(REMOVED_SEQUENCE, "SQ", _depth2(planted, REMOVED_SEQUENCE))
    ds.add_new(OVERLAY_DATA, "OW", OVERLAY_TOKEN + b"\x00" * 15)
    ds.add_new(OVERLAY_COMMENTS, "LT", OVERLAY_COMMENT_TOKEN.decode())
    ds.add_new(CURVE_DATA, "OB", CURVE_TOKEN)
    ds.add_new(CURVE_DESCRIPTION, "LO", CURVE_DESCRIPTION_TOKEN.decode())
    return ds
