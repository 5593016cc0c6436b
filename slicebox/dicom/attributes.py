"""Listing the attributes of a stored dataset, and the few header values viewers need.

Two pure functions with small interfaces:

* :func:`list_attributes` -- every element (file meta, nested sequences) as the
  spec's ``imageAttribute`` dicts.  Still pydicom: its value formatting
  (per-VR padding rules, UN replaced by the dictionary VR, ambiguous VRs
  resolved, AT as tags) is what clients see, and the engine's display
  strings differ in those details; this view is not a hot path.
* :func:`read_image_information` -- the ``imageInformation`` dict, read with
  the streaming engine (stops after Image Index, never builds a dataset).

Pixel data is never read: the header is parsed up to Pixel Data and that
element is described from its own header (tag, VR, length) only.
"""
from __future__ import annotations

import logging
import os
import struct
from typing import BinaryIO, Iterator

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from slicebox.dicom import tagstream
from slicebox.dicom.parsing import check_readable
from slicebox.errors import InvalidDicom

logger = logging.getLogger(__name__)

#: Values of these VRs longer than this many bytes are summarized (as in Slicebox 2.0).
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
BINARY_SUMMARY_LIMIT = 20
BINARY_SUMMARY = "< Binary data >"
FRAGMENTS_SUMMARY = "< Fragments >"
#: Elements larger than this are not read while parsing (binary ones are summarized
#: from their length; a large text value is read when it is listed).
DEFER_SIZE = 4096
UNDEFINED_LENGTH = 0xFFFFFFFF
PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00009, 0x7FE00008)


def list_attributes(source: str | os.PathLike | BinaryIO) -> list[dict]:
    """Every element of a DICOM Part 10 file, in file order, as ``imageAttribute`` dicts.

    Parameters
    ----------
    source
        A path or a seekable binary file positioned at the start of the file.

    Returns
    -------
    list of dict
        ``{group, element, vr, length, multiplicity, depth, path, name, value}``.
        ``group``/``element`` are 4-digit upper-case hex; ``depth`` is the
        sequence nesting depth (0 at the root); ``path`` is the tag path, e.g.
        ``(0008,1115)[1].(0020,000E)`` with 1-based item numbers (PS3.5 7.5);
        ``length`` is the value length in bytes, -1 for undefined length.
        A sequence is one row followed by the rows of its items' elements.
        Binary values (OB/OW/OF/OD/OL/OV/UN) longer than 20 bytes read
        ``"< Binary data >"``; encapsulated pixel data ``"< Fragments >"``.

    Raises
    ------
    InvalidDicom
        The file cannot be parsed as DICOM, or nests sequences deeper than
        the limit (checked before pydicom recurses into it).
    """
    check_readable(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            return _list(fh)
    return _list(source)


def _list(fh: BinaryIO) -> list[dict]:
    try:
        return _list_rows(fh)
    except RecursionError:  # a last resort: check_readable refuses deep data first
        raise InvalidDicom("cannot list this dataset: sequences nested too deep") from None


def _list_rows(fh: BinaryIO) -> list[dict]:
    ds = _read_header(fh)
    # Reading deferred values below may move a shared file object: remember
    # where Pixel Data starts.
    pixel_position = fh.tell()
    rows: list[dict] = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        rows.extend(_walk(meta, depth=0, prefix=""))
    rows.extend(_walk(ds, depth=0, prefix=""))
    fh.seek(pixel_position)
    pixel_row = _pixel_data_row(fh, ds)
    if pixel_row is not None:
        rows.append(pixel_row)
    return rows


def _read_header(fh: BinaryIO) -> Dataset:
    try:
        return pydicom.dcmread(fh, stop_before_pixels=True, defer_size=DEFER_SIZE)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OverflowError, struct.error) as exc:
        raise InvalidDicom(f"malformed DICOM: {exc}") from None


def _walk(ds: Dataset, depth: int, prefix: str) -> Iterator[dict]:
    # Iterate the raw store: iterating the Dataset itself would read deferred values.
    for tag in sorted(ds._dict):
        raw = ds.get_item(tag, keep_deferred=True)
        path = f"{prefix}{_tag_str(tag)}"
        vr = _vr_of(raw, tag)
        if vr == "SQ":
            elem = ds[tag]
            items = list(elem.value or [])
            yield _row(tag, vr, _length(raw, elem), len(items), depth, path, "")
            for number, item in enumerate(items, start=1):
                yield from _walk(item, depth + 1, f"{path}[{number}].")
            continue
        length = _length(raw, None)
        if vr in BINARY_VRS and length > BINARY_SUMMARY_LIMIT:
            # Summarized from the length alone: big values are never read.
            yield _row(tag, vr, length, 1, depth, path, BINARY_SUMMARY)
            continue
        try:
            elem = ds[tag]
            # pydicom resolves implicit and ambiguous VRs ("US or SS") on conversion
            vr = str(elem.VR) if elem.VR and " or " not in str(elem.VR) else vr
            value, multiplicity = _format_value(elem, vr)
            if isinstance(raw, DataElement) or raw is None:
                length = _length(raw, elem)
        except Exception as exc:  # noqa: BLE001 - a malformed value must not hide the others
            logger.debug("cannot convert %s: %s", _tag_str(tag), exc)
            value, multiplicity = _raw_text(raw), 1
        yield _row(tag, vr, length, multiplicity, depth, path, value)


def _row(tag: int, vr: str, length: int, multiplicity: int, depth: int, path: str, value: str) -> dict:
    return {
        "group": f"{tag >> 16:04X}",
        "element": f"{tag & 0xFFFF:04X}",
        "vr": vr,
        "length": length,
        "multiplicity": multiplicity,
        "depth": depth,
        "path": path,
        "name": _name(tag),
        "value": value,
    }


def _tag_str(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _name(tag: int) -> str:
    keyword = keyword_for_tag(tag)
    if keyword:
        return keyword
    return ""


def _vr_of(raw, tag: int) -> str:
    vr = getattr(raw, "VR", None)
    if vr:
        return str(vr)
    # Implicit VR: the dictionary decides; ambiguous ones ("US or SS") take the first.
    try:
        return str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "UN"


def _length(raw, elem: DataElement | None) -> int:
    if isinstance(raw, RawDataElement):
        return -1 if raw.length == UNDEFINED_LENGTH else int(raw.length)
    if elem is None:
        elem = raw
    if elem.VR == "SQ":
        # Undefined-length sequences arrive converted; defined ones raw (above).
        return -1
    return _encoded_length(elem)


def _encoded_length(elem: DataElement) -> int:
    """Length of the value as it would be written (file meta arrives already converted)."""
    try:
        fp = DicomBytesIO()
        fp.is_little_endian = True
        fp.is_implicit_VR = True
        write_data_element(fp, elem)
        return len(fp.getvalue()) - 8  # implicit VR header: tag + 4-byte length
    except Exception:  # noqa: BLE001
        return 0


def _format_value(elem: DataElement, vr: str) -> tuple[str, int]:
    value = elem.value
    if value is None or value == "" or value == b"":
        return "", 0
    if isinstance(value, (bytes, bytearray)):
        # A short binary value (or an unconverted one): hex bytes.
        return " ".join(f"{b:02X}" for b in value), 1
    if isinstance(value, (MultiValue, list, tuple)):
        parts = [_one(v, vr) for v in value]
        return "\\".join(parts), len(parts)
    return _one(value, vr), 1


def _one(value, vr: str) -> str:
    if value is None:
        return ""
    if vr == "AT" and isinstance(value, int):
        return _tag_str(BaseTag(value))
    if isinstance(value, float) and vr in ("FL", "FD"):
        return repr(value)
    return str(value)


def _raw_text(raw) -> str:
    value = getattr(raw, "value", None)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("latin-1", errors="replace").rstrip("\x00 ")
    return "" if value is None else str(value)


def _pixel_data_row(fh: BinaryIO, ds: Dataset) -> dict | None:
    """The Pixel Data row, from the element header at the stop position (never its value)."""
    meta = getattr(ds, "file_meta", None)
    tsuid = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
    if tsuid == DeflatedExplicitVRLittleEndian:
        return _deflated_pixel_row(fh)
    start = fh.tell()
    header = fh.read(12)
    if len(header) < 8:
        return None
    little = ds.is_little_endian if ds.is_little_endian is not None else True
    implicit = ds.is_implicit_VR if ds.is_implicit_VR is not None else False
    end = "<" if little else ">"
    group, element = struct.unpack(end + "HH", header[:4])
    tag = group << 16 | element
    if tag not in PIXEL_DATA_TAGS:
        return None
    if implicit:
        vr = {0x7FE00010: "OW", 0x7FE00009: "OD", 0x7FE00008: "OF"}[tag]
        (length,) = struct.unpack(end + "L", header[4:8])
        fh.seek(start + 8)
    else:
        vr = header[4:6].decode("ascii", errors="replace")
        if len(header) < 12:
            return None
        (length,) = struct.unpack(end + "L", header[8:12])
    if length == UNDEFINED_LENGTH:
        return _row(tag, vr, -1, 1, 0, _tag_str(tag), FRAGMENTS_SUMMARY)
    if length > BINARY_SUMMARY_LIMIT:
        return _row(tag, vr, int(length), 1, 0, _tag_str(tag), BINARY_SUMMARY)
    data = fh.read(length)
    return _row(tag, vr, int(length), 1 if data else 0, 0, _tag_str(tag),
                " ".join(f"{b:02X}" for b in data))


def _deflated_pixel_row(fh: BinaryIO) -> dict | None:
    # Deflated files are inflated whole by pydicom anyway; defer_size keeps the
    # pixel value itself unread.
    fh.seek(0)
    ds = pydicom.dcmread(fh, defer_size=BINARY_SUMMARY_LIMIT)
    for tag in PIXEL_DATA_TAGS:
        raw = ds.get_item(tag, keep_deferred=True)
        if raw is not None:
            length = _length(raw, None) if isinstance(raw, RawDataElement) else _encoded_length(raw)
            summary = FRAGMENTS_SUMMARY if length == -1 else BINARY_SUMMARY
            return _row(tag, _vr_of(raw, tag), length, 1, 0, _tag_str(tag), summary)
    return None


# -- image information ---------------------------------------------------------------
_NUMBER_OF_FRAMES = 0x00280008
_INSTANCE_NUMBER = 0x00200013
_IMAGE_INDEX = 0x00541330
_SMALLEST = 0x00280106
_LARGEST = 0x00280107
_PIXEL_REPRESENTATION = 0x00280103
_TRANSFER_SYNTAX = 0x00020010
#: File meta elements asked for only to tell a Part 10 file from a bare dataset
_META_TAGS = (0x00020000, 0x00020001, 0x00020002, 0x00020003, _TRANSFER_SYNTAX)
_INFO_TAGS = (_NUMBER_OF_FRAMES, _INSTANCE_NUMBER, _IMAGE_INDEX, _SMALLEST, _LARGEST,
              _PIXEL_REPRESENTATION) + _META_TAGS
_IMPLICIT_VR_LE = "1.2.840.10008.1.2"


def read_image_information(source: str | os.PathLike | BinaryIO) -> dict:
    """The spec's ``imageInformation`` from the header only (streaming engine, early stop).

    Returns
    -------
    dict
        ``numberOfFrames`` (NumberOfFrames, default 1), ``frameIndex``
        (max of InstanceNumber and ImageIndex, default 1),
        ``minimumPixelValue`` / ``maximumPixelValue`` (Smallest/Largest Image
        Pixel Value, default 0; signed when Pixel Representation is 1).
    """
    try:
        found = tagstream.read_attributes(source, tags=_INFO_TAGS)
    except tagstream.DicomStreamError as exc:
        raise InvalidDicom(f"malformed DICOM: {exc}") from None
    if not any(tag >> 16 == 2 for tag in found):
        # As before (pydicom without force): only Part 10 files, not bare datasets or garbage
        raise InvalidDicom("not a DICOM file: no file meta information")
    frames = _int_or(found, _NUMBER_OF_FRAMES, None)
    instance = _int_or(found, _INSTANCE_NUMBER, None)
    index = _int_or(found, _IMAGE_INDEX, None)
    present = [v for v in (instance, index) if v is not None]
    return {
        "numberOfFrames": frames if frames is not None else 1,
        "frameIndex": max(present) if present else 1,
        "minimumPixelValue": _pixel_value(found, _SMALLEST),
        "maximumPixelValue": _pixel_value(found, _LARGEST),
    }


def _int_or(found: dict, tag: int, default):
    attr = found.get(tag)
    if attr is None:
        return default
    value = attr.value
    try:
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        elif isinstance(value, str) and "\\" in value:
            value = value.split("\\")[0]
        if value is None or value == "" or value == b"":
            return default
        if isinstance(value, (bytes, bytearray)):
            return default  # UN or a binary VR: not a number we can trust
        return int(float(value))
    except (ValueError, TypeError, OverflowError):
        return default


def _pixel_value(found: dict, tag: int) -> int:
    """Smallest/Largest Image Pixel Value ("US or SS", PS3.5 A.1)."""
    value = _int_or(found, tag, 0)
    attr = found.get(tag)
    # Implicit VR leaves the VR to the reader: PixelRepresentation 1 means SS.
    # An explicit VR says it itself (and is kept even when it contradicts).
    ts = found.get(_TRANSFER_SYNTAX)
    implicit = ts is not None and ts.value == _IMPLICIT_VR_LE
    if attr is not None and implicit and attr.vr == "US" and value >= 0x8000:
        if _int_or(found, _PIXEL_REPRESENTATION, 0) == 1:
            value -= 0x10000
    return value
