"""PS3.15 profiles as edit plans for the streaming engine, and date shifting.

``plan_for`` turns a resolved profile (slicebox.dicom.profiles) and a
request's custom values into the engine's EditPlan: every attribute the
profile names gets its action (X remove, Z empty, D dummy, U one-to-one UID,
C clean, K keep) at any depth, private attributes and masked groups go, the
patient gets the pseudonym of the ``PlanContext`` and Patient Identity
Removed / De-identification Method (+ its code sequence) are written.

Pure DICOM knowledge: what is anonymous (pseudonyms, UIDs, date shift) comes
from the ``PlanContext`` the caller builds (services.image_anonymization), so
nothing here touches the database.
"""
from __future__ import annotations

import contextvars
import datetime
import re
from dataclasses import dataclass
from typing import Callable

from slicebox.dicom import profiles, tagstream
from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.tagpath import TagPath, format_tag_path
from slicebox.errors import BadRequest

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E
SOP_UID = 0x00080018
IDENTITY_REMOVED = 0x00120062
DEID_METHOD = 0x00120063
DEID_CODES = 0x00120064
LONGITUDINAL_MODIFIED = 0x00280303
SOP_CLASS = 0x00080016
SPECIFIC_CHARSET = 0x00080005
PIXEL_DATA = 0x7FE00010
#: Overlay groups (60xx, even xx): removed or kept as a whole, never half (PS3.3 C.9.2).
OVERLAY_GROUP = (0xFF010000, 0x60000000)
OVERLAY_DATA = 0x3000
#: the overlay's own text, cleaned (dummy) when Clean Graphics keeps the overlay
OVERLAY_TEXT = (0x0022, 0x1500, 0x4000)  # Overlay Description, Overlay Label, Overlay Comments
#: The identity columns of an anonymization key.
KEY_TAGS = frozenset({PATIENT_NAME, PATIENT_ID, STUDY_UID, SERIES_UID, SOP_UID})
#: The attributes that say how a dataset was de-identified.
DEID_TAGS = frozenset({IDENTITY_REMOVED, DEID_METHOD, DEID_CODES, LONGITUDINAL_MODIFIED})
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ", "AT", "US", "SS", "UL", "SL", "FL",
                        "FD", "UV", "SV"})
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
                      "UR", "UT"})

#: Custom values: (tag path, text value) pairs a request adds to its profile.
CustomValues = list[tuple[TagPath, str]]


def text(attribute) -> str:
    """The text of an engine Attribute (multiple values joined by backslash); "" when absent."""
    if attribute is None:
        return ""
    value = attribute.value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\\".join(_text_scalar(v) for v in value)
    return _text_scalar(value)


def _text_scalar(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    elif isinstance(value, float) and value.is_integer():
        return str(int(value))
    # NUL is DICOM padding; one inside a value (a broken writer) is dropped, as
    # ingest's index does, since keys keep text and PostgreSQL text holds no NUL.
    return str(value).strip(" \0").replace("\0", "")


def _decode(old: bytes | None) -> str:
    return (old or b"").decode("ascii", "replace").strip(" \0")


def check_custom_value(path: TagPath, value: str) -> None:
    """400 for a custom value the engine cannot write as a text value of that attribute."""
    tag = path.tag
    if tag >> 16 in (0x0000, 0x0002, 0xFFFE) or tag == PIXEL_DATA:
        # file meta follows the dataset (Media Storage SOP Instance UID = SOP Instance UID)
        raise BadRequest(f"{format_tag_path(path)} cannot take a custom value")
    try:
        # The engine knows the dictionary VR; a trial insert says whether it can write the value.
        [(_trunk, _tag, vr, _value)] = tagstream.EditPlan().insert(path, value).compile()[4]
    except DicomStreamError as exc:
        raise BadRequest(f"bad tag value for {format_tag_path(path)}: {exc}") from None
    if vr == "SQ" or vr not in TEXT_VRS and not tag >> 16 & 1:
        raise BadRequest(f"{format_tag_path(path)} has VR {vr}: only text attributes take custom values")


# A DA or DT (optionally with a UTC offset &ZZXX, hours 00-14) and a range of them (A-B, -B, A-).
_OFFSET = r"[+-](?:0[0-9]|1[0-4])[0-5][0-9]"
_DATE_OR_DT = rf"[0-9][0-9.]*(?:{_OFFSET})?"
_RANGE = re.compile(rf"(?P<a>{_DATE_OR_DT})?(?:-(?P<b>{_DATE_OR_DT})?)?")
_DT_PARTS = re.compile(rf"(?P<date>[0-9]{{8}})(?P<rest>[0-9]*(?:\.[0-9]*)?)(?P<offset>{_OFFSET})?")
_DUMMY_DATE = "19000101"


def shift_date(text: str, days: int) -> str:
    """Shift every date in a DA/DT value by ``days``; times and UTC offsets stay.

    A value that is not a full date (or a range of them) cannot be shifted and
    gets a dummy date: nothing of the original survives.
    """
    def one(value: str) -> str:
        parts = _DT_PARTS.fullmatch(value)
        if parts is None:
            return _DUMMY_DATE
        date = parts["date"]
        try:
            day = datetime.date(int(date[:4]), int(date[4:6]), int(date[6:8]))
            date = (day + datetime.timedelta(days=days)).strftime("%Y%m%d")
        except (ValueError, OverflowError):
            date = _DUMMY_DATE
        return date + parts["rest"] + (parts["offset"] or "")

    def shift_value(value: str) -> str:
        value = value.strip()
        found = _RANGE.fullmatch(value)
        if not value or found is None:
            return value and _DUMMY_DATE
        # A '-' before four digits can be a UTC offset or a range; the regex
        # takes an offset when the digits form one (hours 00-14), else a range.
        start, end = found["a"], found["b"]
        if "-" not in value[len(start or ""):]:
            return one(start)
        return (one(start) if start else "") + "-" + (one(end) if end else "")

    return "\\".join(shift_value(v) for v in text.split("\\"))


@dataclass(frozen=True)
class PlanContext:
    """What one anonymization adds to its profile's plan: the patient's pseudonym and date shift,
    and how a real UID maps to its anonymous one."""

    anon_name: str
    anon_id: str
    shift: int
    uid_map: Callable[[str], str]


# The plan of a profile holds callables that read the current anonymization's
# context, so one compiled plan per profile serves every request: building it
# (about 650 rules) cost more than the engine's whole rewrite of a CT image.
# A ContextVar is per thread, so concurrent requests never see each other's patient.
_context: contextvars.ContextVar[PlanContext] = contextvars.ContextVar("anonymization_plan_context")
_plans: dict[tuple, tagstream.EditPlan] = {}
_tag_sets: dict[tuple[str, ...], frozenset[int]] = {}


def _uid_map(old):
    text = _decode(old)
    if not text:
        return ""
    uid_map = _context.get().uid_map
    return "\\".join(uid_map(u) for u in text.split("\\"))


def _date_shift(old):
    text = _decode(old)
    return shift_date(text, _context.get().shift) if text else ""


def _anon_name(_old):
    return _context.get().anon_name


def _anon_id(_old):
    return _context.get().anon_id


def longitudinal_temporal_information(prof: profiles.Profile) -> str:
    """(0028,0303) per PS3.15 E.2: MODIFIED when dates are shifted, UNMODIFIED when kept, else REMOVED."""
    if prof.modified_dates:
        return "MODIFIED"
    if prof.has("RETAIN_LONGITUDINAL_TEMPORAL_INFORMATION"):
        return "UNMODIFIED"
    return "REMOVED"


def _overlay_rules(plan: tagstream.EditPlan, prof: profiles.Profile) -> None:
    """An overlay goes as a whole group, or (Clean Graphics) stays whole with its text cleaned.

    Removing Overlay Data alone leaves Rows, Columns, Type and Origin of an
    overlay without its bits (invalid: Overlay Data is Type 1).  Overlay Data
    is a bitmap: it cannot be cleaned element by element, so Clean Graphics
    keeps it and replaces the overlay's text attributes by dummies.
    """
    if prof.action_for(0x60000000 | OVERLAY_DATA) == "K":
        return
    if prof.action_for(0x60000000 | OVERLAY_DATA) != "C":
        plan.remove_mask(OVERLAY_GROUP)
        return
    for group in range(0x6000, 0x6020, 2):
        for element in OVERLAY_TEXT:
            plan.replace(group << 16 | element, profiles.dummy_value("LT" if element == 0x4000 else "LO"))


def _new_plan(prof: profiles.Profile, custom: CustomValues, sequences: tuple = ()) -> tagstream.EditPlan:
    """The engine's EditPlan for a profile (and custom values); per-dataset values come from _context.

    ``sequences`` are (tag, action) of conditional-code sequences the dataset's
    IOD requires (:func:`profiles.sequence_action`): ``Z`` writes the sequence
    empty at the root, ``C`` keeps its items with their content cleaned.
    """
    plan = tagstream.EditPlan()
    chosen = dict(sequences)
    for tag, action in prof.exact.items():
        action = chosen.get(tag, action)
        if action == "K" or tag in DEID_TAGS:
            continue
        vr = prof.vrs.get(tag, "")
        if action == "X":
            plan.remove(tag)
        elif action == "Z":
            plan.replace(tag, b"")
        elif action == "D":
            plan.replace(tag, profiles.dummy_value(vr))
        elif action == "U":
            plan.replace(tag, _uid_map)
        elif action == "C":
            kind = profiles.clean_kind(vr, prof)
            if kind == "shift":
                plan.replace(tag, _date_shift)
            elif kind == "dummy":
                plan.replace(tag, profiles.dummy_value(vr))
            # 'keep' and 'recurse': the element stays, nested items get their own rules
    for mask, action in prof.masks:
        if mask.value >> 24 == 0x60 and mask.mask >> 24 == 0xFF:
            continue  # overlays: whole groups, below
        if action not in ("K", "U"):
            plan.remove_mask((mask.mask, mask.value))
    _overlay_rules(plan, prof)
    if prof.private != "K":
        # The engine removes private attributes all or nothing: it cannot tell a
        # safe element (named by creator, group and element) from any other, so
        # with a safe list every private attribute still goes.  Keeping them all
        # would leak whatever the unsafe ones carry.
        plan.remove_private()
    # Root identity: this box's pseudonyms (inserts win over the profile's Z).
    plan.insert(PATIENT_NAME, _anon_name)
    plan.insert(PATIENT_ID, _anon_id)
    plan.insert(IDENTITY_REMOVED, "YES")
    plan.insert(DEID_METHOD, profiles.deidentification_method(prof)[:64])
    plan.insert(LONGITUDINAL_MODIFIED, longitudinal_temporal_information(prof), vr="CS")
    for tag, action in sequences:
        if action == "Z":
            plan.insert(tag, b"", vr="SQ")
    plan.insert(DEID_CODES, [
        [(0x00080100, "SH", code), (0x00080102, "SH", scheme), (0x00080104, "LO", meaning[:64])]
        for code, scheme, meaning in profiles.deidentification_codes(prof)
    ], vr="SQ")
    for path, value in custom:  # a user's chosen values win over generated ones
        plan.insert(path, value)
    plan.compile()
    return plan


def plan_for(prof: profiles.Profile, custom: CustomValues, sop_class_uid: str = "") -> tagstream.EditPlan:
    """The profile's cached plan for a SOP class, or a fresh one when the request brings custom values."""
    required = profiles.sequence_types(sop_class_uid) if prof.conditional_sq else {}
    sequences = tuple(sorted((tag, profiles.sequence_action(prof.conditional_sq[tag], iod_type))
                             for tag, iod_type in required.items() if tag in prof.conditional_sq))
    if custom:
        return _new_plan(prof, custom, sequences)
    key = (tuple(o.name for o in prof.options), sequences)
    plan = _plans.get(key)
    if plan is None:  # two threads may both build it; either result is the same
        plan = _plans[key] = _new_plan(prof, custom, sequences)
    return plan


def rewrite(src, dst: str | None, plan: tagstream.EditPlan, context: PlanContext) -> tagstream.RewriteResult:
    """Run the engine with ``plan`` over ``src`` (path or bytes) into ``dst`` (None: bytes back)."""
    token = _context.set(context)
    try:
        return tagstream.rewrite(src, dst, plan)
    finally:
        _context.reset(token)


def wanted_tags(prof: profiles.Profile, custom: CustomValues) -> frozenset[int]:
    """Root tags read before and after the rewrite to record the key (cached per profile)."""
    key = None if custom else tuple(o.name for o in prof.options)
    tags = _tag_sets.get(key) if key is not None else None
    if tags is None:
        tags = _new_wanted_tags(prof, custom)
        if key is not None:
            _tag_sets[key] = tags
    return tags


def _new_wanted_tags(prof: profiles.Profile, custom: CustomValues) -> frozenset[int]:
    tags = {t for t, a in prof.exact.items() if a != "K"} | KEY_TAGS | DEID_TAGS | {SOP_CLASS, SPECIFIC_CHARSET}
    tags |= {p.tag for p, _ in custom if not p.trunk}
    # Nothing from Pixel Data on is a key value (all binary), and asking for a
    # tag past it would make the reader scan the whole file.
    return frozenset(t for t in tags if t < PIXEL_DATA)


def _as_text_vr(attribute, tag: int, charset):
    """A VR UN attribute of a text attribute (explicit VR UN, as some converters write) read as its
    dictionary VR, so its value is recorded in the key and can be restored; others unchanged."""
    if attribute is None or attribute.vr != "UN" or not isinstance(attribute.value, bytes):
        return attribute
    vr = tagstream.dictionary_vr(tag)
    if vr not in TEXT_VRS:
        return attribute
    return tagstream.Attribute(vr, tagstream.decode_text(attribute.value, vr, charset.value if charset else None))


def changed_values(real: dict, anon: dict) -> list[tuple[str, str, str]]:
    """(tag path text, real value, anonymous value) of the root text attributes the rewrite changed.

    Only text values present in the real data are listed (they are what
    re-identification can restore); identity columns, de-identification
    attributes and file meta are left out.
    """
    values = []
    charset = real.get(SPECIFIC_CHARSET)
    for tag in sorted(set(real) | set(anon)):
        if tag in KEY_TAGS or tag in DEID_TAGS or tag >> 16 == 0x0002:
            continue
        before, after = _as_text_vr(real.get(tag), tag, charset), _as_text_vr(anon.get(tag), tag, charset)
        if before is None or before.vr in BINARY_VRS:
            continue
        real_text, anon_text = text(before), text(after)
        if real_text != anon_text or after is None:
            values.append((format_tag_path(TagPath(tag)), real_text, anon_text))
    return values
