"""Attribute modification (``PUT /images/{id}/modify``) as a streaming edit plan.

A modification is a list of ``(tag path, string value)`` pairs. Each pair
replaces the element the path names, or inserts it when its dataset lacks it;
paths may lead into existing sequence items (``[n]``, 1-based) or every item
of a sequence (``[*]``).

:func:`build_plan` turns the pairs into an :class:`~slicebox.dicom.tagstream.EditPlan`
for :func:`~slicebox.dicom.tagstream.rewrite`, after resolving each path
against the dataset itself:

* **Items must exist.** The engine's ``insert`` silently does nothing for an
  item that is not there (it never creates items). A user who names item 3
  of a two-item sequence, or a sequence the dataset lacks, would then get a
  "successful" new image without their change; so a path whose trunk matches
  no existing item is refused (:class:`ModificationError`), for a concrete
  index and for ``[*]`` alike (a wildcard over no items would change nothing).
* **Wildcards are expanded** to the concrete items present, and pairs that
  end up naming the same element are merged, the later pair winning; the
  engine therefore never sees two edits of one element.
* **Values are encoded here, per the element's VR** (the VR of the existing
  element, else the dictionary VR): numbers for US/SS/UL/SL/UV/SV/FL/FD,
  tags for AT, validated text for string VRs (PS3.5 6.2 rules as pydicom
  checks them), text in the Specific Character Set for LO/LT/PN/SH/ST/UC/UT,
  UTF-8 bytes for OB/UN, and only the empty string for a sequence (an empty
  sequence). A value the VR cannot hold is a :class:`ModificationError`
  rather than silently stored garbage (the engine would, for example, write
  the ASCII bytes of ``"abc"`` into a US element).
* **Refused targets:** file meta information (group 0002: the transfer
  syntax and friends describe the encoding, they are not image attributes),
  group lengths (retired, and the engine drops them), item and delimiter
  tags, Pixel Data, and the other bulk VRs (OW/OF/OD/OL/OV) that no string
  can meaningfully hold.
"""
from __future__ import annotations

import logging
import math

from pydicom import config as pydicom_config
from pydicom.charset import convert_encodings, decode_bytes, encode_string
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.valuerep import validate_value

from slicebox.dicom import tagstream
from slicebox.dicom.errors import DicomStreamError
from slicebox.dicom.tagpath import WILDCARD, TagPath, TagValue, format_tag, format_tag_path, parse_tag

logger = logging.getLogger(__name__)

__all__ = ["TagMapping", "ModificationError", "build_plan"]

SPECIFIC_CHARSET = 0x00080005
PIXEL_REPRESENTATION = 0x00280103
PIXEL_DATA = 0x7FE00010

_INT_RANGES = {
    "US": (0, 0xFFFF),
    "SS": (-0x8000, 0x7FFF),
    "UL": (0, 0xFFFFFFFF),
    "SL": (-0x80000000, 0x7FFFFFFF),
    "UV": (0, 0xFFFFFFFFFFFFFFFF),
    "SV": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
}
_FLOAT_VRS = frozenset(["FL", "FD"])
_CHARSET_VRS = frozenset(["LO", "LT", "PN", "SH", "ST", "UC", "UT"])
#: Text VRs holding one value, where a backslash is an ordinary character.
_SINGLE_VALUED = frozenset(["LT", "ST", "UT", "UR"])
_TEXT_VRS = frozenset(
    "AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split()
)
_BYTES_VRS = frozenset(["OB", "UN"])
_REFUSED_BULK_VRS = frozenset(["OW", "OF", "OD", "OL", "OV"])


class ModificationError(ValueError):
    """A modification that cannot be applied to this dataset (a client error)."""


#: One requested change: set the element at ``path`` to ``value``.
TagMapping = TagValue


def build_plan(source, mappings: list[TagMapping]) -> tagstream.EditPlan:
    """Resolve ``mappings`` against the dataset ``source`` and return the edit plan.

    Parameters
    ----------
    source : bytes, path or file object
        The stored Part 10 dataset (only its attributes before Pixel Data
        that the paths lead through are read).
    mappings : list of TagMapping
        Applied in order; a later mapping of the same element wins.

    Raises
    ------
    ModificationError
        A refused target, a path to an item that does not exist, or a value
        its VR cannot hold.
    DicomStreamError
        The stored dataset itself is malformed.
    """
    if not mappings:
        raise ModificationError("no tag mappings given")
    for m in mappings:
        _check_target(m.path)
    roots = {m.path.trunk[0][0] if m.path.trunk else m.path.tag for m in mappings}
    roots.update((SPECIFIC_CHARSET, PIXEL_REPRESENTATION))
    attrs = tagstream.read_attributes(source, tags=sorted(roots))
    pixel_rep = attrs.get(PIXEL_REPRESENTATION)
    signed = pixel_rep is not None and pixel_rep.value == 1
    encodings = _encodings(attrs.get(SPECIFIC_CHARSET))
    # A modification of the character set itself governs the new values.
    for m in mappings:
        if m.path.tag == SPECIFIC_CHARSET and not m.path.trunk:
            encodings = _encodings(tagstream.Attribute("CS", m.value))

    edits: dict[tuple, tuple[str, object]] = {}
    for m in mappings:
        targets = _expand(attrs, m.path)
        if not targets:
            raise ModificationError(
                f"tag path {_describe(m.path)} leads to no existing sequence item; "
                "items are not created")
        for trunk, dataset in targets:
            existing = dataset.get(m.path.tag)
            vr = existing.vr if existing is not None else _dictionary_vr(m.path.tag, signed)
            encoded = encode_value(m.value, vr, encodings, TagPath(m.path.tag, trunk))
            edits[(trunk, m.path.tag)] = (vr, encoded)
    plan = tagstream.EditPlan()
    for (trunk, tag), (vr, encoded) in edits.items():
        plan.insert(TagPath(tag, trunk), encoded, vr=vr)
    return plan


def _describe(path: TagPath) -> str:
    """``(0008,1140)[2].(0008,1155) ReferencedSOPInstanceUID`` for messages."""
    keyword = keyword_for_tag(path.tag)
    return f"{format_tag_path(path)} {keyword}" if keyword else format_tag_path(path)


def _check_target(path: TagPath) -> None:
    tag = path.tag
    where = _describe(path)
    if tag >> 16 == 0x0002 or any(t >> 16 == 0x0002 for t, _ in path.trunk):
        raise ModificationError(f"{where}: file meta information (group 0002) cannot be modified")
    if tag >> 16 == 0xFFFE:
        raise ModificationError(f"{where}: item and delimiter tags are not attributes")
    if tag & 0xFFFF == 0:
        raise ModificationError(f"{where}: group length elements cannot be modified")
    if tag == PIXEL_DATA:
        raise ModificationError(f"{where}: Pixel Data cannot be modified")


def _dictionary_vr(tag: int, signed: bool = False) -> str:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        raise ModificationError(
            f"{format_tag(tag)} is not in the DICOM dictionary and not in the dataset, "
            "so its VR is unknown") from None
    options = vr.split(" or ")
    # "US or SS" (pixel value attributes) follows Pixel Representation (PS3.5 A.1 c);
    # for the others ("OB or OW", ...) the first is the common encoding.
    if signed and "SS" in options:
        return "SS"
    return options[0]


def _expand(attrs: dict, path: TagPath) -> list[tuple[tuple, dict]]:
    """The concrete ``(trunk, item dataset)`` pairs ``path``'s trunk names."""
    level = [((), attrs)]
    for seq_tag, index in path.trunk:
        nxt = []
        for trunk, dataset in level:
            seq = dataset.get(seq_tag)
            if seq is None or not isinstance(seq.value, list):
                continue
            items = seq.value
            if index == WILDCARD:
                chosen = range(1, len(items) + 1)
            else:
                chosen = [index] if index <= len(items) else []
            for i in chosen:
                nxt.append((trunk + ((seq_tag, i),), items[i - 1]))
        level = nxt
    return level


def _encodings(attr) -> list[str] | None:
    if attr is None or not isinstance(attr.value, str) or not attr.value.strip():
        return None
    terms = [t.strip() for t in attr.value.split("\\")]
    try:
        return convert_encodings(terms)
    except Exception:  # noqa: BLE001 - an unknown term: treat as default repertoire
        logger.debug("unknown Specific Character Set %r", attr.value)
        return None


def encode_value(text: str, vr: str, encodings: list[str] | None, path: TagPath):
    """Encode the string ``text`` for an element of ``vr`` (see module docstring).

    Returns ``bytes`` or a list of numbers, as :meth:`EditPlan.insert` takes them.
    """
    where = _describe(path)
    if vr == "SQ":
        if text:
            raise ModificationError(f"{where} is a sequence; only an empty value (empty sequence) is allowed")
        return b""
    if vr in _INT_RANGES:
        return _numbers(text, vr, where, int)
    if vr in _FLOAT_VRS:
        return _numbers(text, vr, where, float)
    if vr == "AT":
        if not text:
            return b""
        try:
            return [parse_tag(part.strip()) for part in text.split("\\")]
        except DicomStreamError:
            raise ModificationError(f"{where} (AT) needs tags such as (0010,0010): {text!r}") from None
    if vr in _BYTES_VRS:
        return text.encode("utf-8")
    if vr in _REFUSED_BULK_VRS:
        raise ModificationError(f"{where} has binary VR {vr}, which a string value cannot set")
    if vr in _TEXT_VRS:
        return _text(text, vr, encodings, where)
    raise ModificationError(f"{where} has VR {vr}, which cannot be modified")


def _numbers(text: str, vr: str, where: str, kind):
    if not text.strip():
        return b""
    values = []
    for part in text.split("\\"):
        try:
            value = kind(part.strip())
        except ValueError:
            raise ModificationError(
                f"{where} has VR {vr}, which holds numbers; {part.strip()!r} is not one") from None
        if kind is int:
            low, high = _INT_RANGES[vr]
            if not low <= value <= high:
                raise ModificationError(f"{where}: {value} is out of range for VR {vr} ({low}..{high})")
        elif vr == "FL" and math.isfinite(value) and abs(value) > 3.4028234663852886e38:
            raise ModificationError(f"{where}: {value} is out of range for VR FL")
        values.append(value)
    return values


def _text(text: str, vr: str, encodings: list[str] | None, where: str) -> bytes:
    parts = [text] if vr in _SINGLE_VALUED else text.split("\\")
    for part in parts:
        try:
            validate_value(vr, part, pydicom_config.RAISE)
        except ValueError as exc:
            raise ModificationError(f"{where}: {exc}") from None
    if text.isascii():
        return text.encode("ascii")
    if vr not in _CHARSET_VRS:
        raise ModificationError(f"{where}: VR {vr} allows only ASCII characters: {text!r}")
    if not encodings:
        raise ModificationError(
            f"{where}: {text!r} is not ASCII and the dataset has no Specific Character Set "
            "(0008,0005) that could hold it; set one in the same modification (e.g. ISO_IR 192)")
    unencodable = ModificationError(
        f"{where}: {text!r} cannot be encoded in the dataset's character set "
        f"({', '.join(encodings)})")
    if len(encodings) == 1:
        # The common case, checked up front so pydicom does not warn.
        try:
            text.encode(encodings[0])
        except (UnicodeError, LookupError):
            raise unencodable from None
    # pydicom replaces unencodable characters with '?' (and only warns);
    # a round trip tells whether the value survived.
    try:
        data = encode_string(text, encodings)
        delims = {0x5C, 0x5E, 0x3D} if vr == "PN" else {0x5C, 0x0D, 0x0A, 0x09, 0x0C}
        ok = decode_bytes(data, encodings, delims) == text
    except Exception:  # noqa: BLE001 - codec errors of exotic charsets
        ok = False
    if not ok:
        raise unencodable
    return data
