"""Reading what ingest needs from a DICOM Part 10 file, and validating it.

Only the hierarchy attributes are read, with the streaming engine
(:mod:`slicebox.dicom.tagstream`): it stops at the last attribute ingest
needs, so pixel data is never read, and no pydicom dataset is built.
"""
from __future__ import annotations

import logging
import struct

from slicebox.dicom import tagstream
from slicebox.dicom.errors import DicomDepthError, InflateLimitError
from slicebox.errors import InvalidDicom, PayloadTooLarge
from slicebox.models import DicomIdentity

logger = logging.getLogger(__name__)

#: keyword -> DicomIdentity field, for the attributes stored in the hierarchy tables
IDENTITY_KEYWORDS = {
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "PatientBirthDate": "patient_birth_date",
    "PatientSex": "patient_sex",
    "StudyInstanceUID": "study_instance_uid",
    "StudyDescription": "study_description",
    "StudyDate": "study_date",
    "StudyID": "study_id",
    "AccessionNumber": "accession_number",
    "PatientAge": "patient_age",
    "SeriesInstanceUID": "series_instance_uid",
    "SeriesDescription": "series_description",
    "SeriesDate": "series_date",
    "Modality": "modality",
    "ProtocolName": "protocol_name",
    "BodyPartExamined": "body_part_examined",
    "Manufacturer": "manufacturer",
    "StationName": "station_name",
    "FrameOfReferenceUID": "frame_of_reference_uid",
    "ImageType": "image_type",
    "InstanceNumber": "instance_number",
    "SOPInstanceUID": "sop_instance_uid",
    "SOPClassUID": "sop_class_uid",
    "PatientIdentityRemoved": "patient_identity_removed",
}

#: keyword -> tag, spelled out so that ingest needs no data dictionary lookup
IDENTITY_TAGS = {
    "PatientName": 0x00100010,
    "PatientID": 0x00100020,
    "PatientBirthDate": 0x00100030,
    "PatientSex": 0x00100040,
    "StudyInstanceUID": 0x0020000D,
    "StudyDescription": 0x00081030,
    "StudyDate": 0x00080020,
    "StudyID": 0x00200010,
    "AccessionNumber": 0x00080050,
    "PatientAge": 0x00101010,
    "SeriesInstanceUID": 0x0020000E,
    "SeriesDescription": 0x0008103E,
    "SeriesDate": 0x00080021,
    "Modality": 0x00080060,
    "ProtocolName": 0x00181030,
    "BodyPartExamined": 0x00180015,
    "Manufacturer": 0x00080070,
    "StationName": 0x00081010,
    "FrameOfReferenceUID": 0x00200052,
    "ImageType": 0x00080008,
    "InstanceNumber": 0x00200013,
    "SOPInstanceUID": 0x00080018,
    "SOPClassUID": 0x00080016,
    "PatientIdentityRemoved": 0x00120062,
}
TRANSFER_SYNTAX_UID = 0x00020010
#: What the engine is asked for; it stops after the largest of these tags.
_WANTED = frozenset(IDENTITY_TAGS.values()) | {TRANSFER_SYNTAX_UID}

REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

_UID_CHARS = set("0123456789.")


def _text(value) -> str:
    """The stored text of a decoded value: padding stripped, values joined by ``\\``.

    Text values arrive decoded (Specific Character Set applied) and
    ``\\``-joined; each value is stripped as pydicom-based ingest did
    (whitespace, then trailing NULs), so stored strings are unchanged; a NUL
    inside a value is dropped.
    ``bytes`` come from a UN element (a private-ish writer): read as text.
    """
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\\".join(_text(v) for v in value)
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    if isinstance(value, str):
        if "\\" in value:
            value = "\\".join(v.strip().rstrip("\x00") for v in value.split("\\"))
        else:
            value = value.strip().rstrip("\x00")
        # NUL is padding in DICOM, never content; one inside a value (a broken
        # writer) cannot be stored as text by PostgreSQL: the index drops it, the
        # stored bytes keep it.
        return value.replace("\x00", "") if "\x00" in value else value
    return str(value)


def is_valid_uid(uid: str) -> bool:
    """PS3.5 9.1 character set and length.

    The leading-zero rule is not enforced: real devices break it, and losing
    their images would be worse than storing a slightly irregular UID.
    """
    return 0 < len(uid) <= 64 and set(uid) <= _UID_CHARS and ".." not in uid


def has_part10_prefix(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


#: Implementation Class UID written into file meta information this box creates (2.25: UUID-derived).
IMPLEMENTATION_CLASS_UID = "2.25.302631958231469263004785385563413582271"
IMPLEMENTATION_VERSION = "SLICEBOX_PY"
_MEDIA_SOP_CLASS = 0x00020002
_MEDIA_SOP_INSTANCE = 0x00020003
_SOP_CLASS = 0x00080016
_SOP_INSTANCE = 0x00080018


def _meta_element(tag: int, vr: bytes, value: bytes) -> bytes:
    if len(value) & 1:
        value += b"\0" if vr in (b"UI", b"OB") else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    if vr == b"OB":
        return head + b"\0\0" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def file_meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """A file meta information group (PS3.10 7.1), group length included, explicit VR little endian."""
    body = b"".join([
        _meta_element(0x00020001, b"OB", b"\x00\x01"),
        _meta_element(_MEDIA_SOP_CLASS, b"UI", sop_class.encode("ascii")),
        _meta_element(_MEDIA_SOP_INSTANCE, b"UI", sop_instance.encode("ascii")),
        _meta_element(TRANSFER_SYNTAX_UID, b"UI", transfer_syntax.encode("ascii")),
        _meta_element(0x00020012, b"UI", IMPLEMENTATION_CLASS_UID.encode("ascii")),
        _meta_element(0x00020013, b"SH", IMPLEMENTATION_VERSION.encode("ascii")),
    ])
    return _meta_element(0x00020000, b"UL", struct.pack("<I", len(body))) + body


def to_part10(path: str, out_path: str) -> bool:
    """Write a proper Part 10 file for data at ``path`` that lacks the preamble or file meta.

    Some modalities write the file meta information without the 128-byte
    preamble and 'DICM', others a dataset that starts right away (pydicom
    reads both).  Such data is rewritten to ``out_path`` with a zero preamble,
    'DICM' and complete file meta information (Media Storage SOP Class and
    Instance UID from the dataset, the transfer syntax the data is in, this
    box's Implementation Class UID); the dataset bytes are unchanged.
    Returns False (nothing written) when ``path`` already has the prefix.

    Raises
    ------
    InvalidDicom
        The data is not DICOM the engine can read.
    """
    with open(path, "rb") as fh:
        head = fh.read(132)
    if has_part10_prefix(head):
        return False
    if len(head) < 8:
        raise InvalidDicom("not a DICOM file: too short")
    try:
        found = tagstream.read_attributes(path, tags=(TRANSFER_SYNTAX_UID, _MEDIA_SOP_CLASS, _MEDIA_SOP_INSTANCE,
                                                      _SOP_CLASS, _SOP_INSTANCE))
        if head[0] == 2 and head[1] == 0 and 65 <= head[4] <= 90 and 65 <= head[5] <= 90:
            # file meta without the preamble: the engine rewrites it (group length recomputed)
            plan = tagstream.EditPlan()
            for media, tag in ((_MEDIA_SOP_CLASS, _SOP_CLASS), (_MEDIA_SOP_INSTANCE, _SOP_INSTANCE)):
                if media not in found and tag in found:
                    plan.insert(media, _text(found[tag].value), vr="UI")
            if TRANSFER_SYNTAX_UID not in found:
                raise InvalidDicom("file meta information has no Transfer Syntax UID")
            with open(out_path, "wb") as out:
                out.write(b"\0" * 128 + b"DICM")
                out.flush()
                tagstream.rewrite(path, out, plan)
            return True
        # a bare dataset: the engine tells its encoding (implicit / explicit VR, byte order)
        ts = _syntax_of(head)
        sop_class = _text(found[_SOP_CLASS].value) if _SOP_CLASS in found else ""
        sop_instance = _text(found[_SOP_INSTANCE].value) if _SOP_INSTANCE in found else ""
        if not (is_valid_uid(sop_class) and is_valid_uid(sop_instance)):
            # anything parses as some implicit VR element; a dataset has its SOP UIDs
            raise InvalidDicom("not a DICOM file: no preamble, no file meta and no SOP Class / Instance UID")
        with open(out_path, "wb") as out, open(path, "rb") as src:
            out.write(b"\0" * 128 + b"DICM" + file_meta(sop_class, sop_instance, ts))
            while chunk := src.read(1 << 20):
                out.write(chunk)
        return True
    except tagstream.DicomStreamError as exc:
        raise InvalidDicom(f"not a DICOM file: no preamble, and not readable as a dataset: {exc}") from None
    except (LookupError, TypeError, OverflowError, struct.error) as exc:
        raise InvalidDicom(f"malformed DICOM: {exc}") from None


def _syntax_of(head: bytes) -> str:
    """The transfer syntax of a bare dataset from its first element (as the engine and pydicom guess)."""
    explicit = 65 <= head[4] <= 90 and 65 <= head[5] <= 90
    if explicit and head[0] == 0 and head[1] != 0:
        return "1.2.840.10008.1.2.2"  # explicit VR big endian
    return "1.2.840.10008.1.2.1" if explicit else "1.2.840.10008.1.2"


def read_identity(path: str) -> DicomIdentity:
    """Read the hierarchy attributes of the Part 10 file at ``path``.

    Reads the file head only: the engine stops at the largest identity tag
    (Frame of Reference UID), long before pixel data.

    Raises
    ------
    InvalidDicom
        Not a DICOM Part 10 file, no transfer syntax, a missing/invalid
        Study, Series or SOP Instance UID, or malformed data before the
        last identity attribute.
    """
    with open(path, "rb") as fh:
        if not has_part10_prefix(fh.read(132)):
            raise InvalidDicom("not a DICOM file: missing the 128-byte preamble and 'DICM' prefix")
        fh.seek(0)
        try:
            found = tagstream.read_attributes(fh, tags=_WANTED)
        except tagstream.DicomStreamError as exc:
            raise InvalidDicom(f"malformed DICOM: {exc}") from None
        except (LookupError, TypeError, OverflowError, struct.error) as exc:
            # e.g. an unknown codec named by Specific Character Set
            logger.debug("engine failed on %s", path, exc_info=True)
            raise InvalidDicom(f"malformed DICOM: {exc}") from None
    ts = found.get(TRANSFER_SYNTAX_UID)
    tsuid = _text(ts.value) if ts is not None else ""
    if not tsuid:
        raise InvalidDicom("file meta information has no Transfer Syntax UID")
    values = {}
    for keyword, field_name in IDENTITY_KEYWORDS.items():
        attr = found.get(IDENTITY_TAGS[keyword])
        values[field_name] = _text(attr.value) if attr is not None else ""
    for keyword in REQUIRED:
        uid = values[IDENTITY_KEYWORDS[keyword]]
        if not uid:
            raise InvalidDicom(f"dataset has no {keyword}")
        if not is_valid_uid(uid):
            raise InvalidDicom(f"{keyword} is not a valid UID: {uid[:80]!r}")
    values["transfer_syntax_uid"] = tsuid
    return DicomIdentity(**values)


def check_complete(path: str) -> None:
    """Refuse a file whose elements do not run exactly to its end (e.g. cut short in the pixel data).

    Only element headers are read (the file is memory-mapped), so this costs
    little even for a multi-gigabyte multi-frame file.

    Raises
    ------
    InvalidDicom
        The data ends inside an element, a sequence or fragments lack their
        delimiter, or garbage follows the last element.
    """
    try:
        tagstream.check_complete(path)
    except tagstream.DicomStreamError as exc:
        raise InvalidDicom(f"incomplete or malformed DICOM: {exc}") from None
    except (LookupError, TypeError, OverflowError, ValueError) as exc:
        raise InvalidDicom(f"malformed DICOM: {exc}") from None


def check_deflated(path: str, max_size: int, max_ratio: float) -> None:
    """Refuse a deflated-syntax file that inflates past ``max_size`` bytes or ``max_ratio`` x its size.

    Inflates chunk by chunk into nothing (memory stays flat) and stops at
    the first byte past a limit, so a decompression bomb costs milliseconds.
    Also refuses a deflate stream cut short, or followed by garbage.  Other
    transfer syntaxes pass untouched.

    Raises
    ------
    PayloadTooLarge
        Past a limit (413).
    InvalidDicom
        Bad, incomplete or trailing deflated data.
    """
    try:
        tagstream.check_deflated(path, max_size=max_size, max_ratio=max_ratio)
    except InflateLimitError as exc:
        raise PayloadTooLarge(f"refused: {exc}") from None
    except tagstream.DicomStreamError as exc:
        raise InvalidDicom(f"malformed deflated DICOM: {exc}") from None


def check_readable(source) -> None:
    """Before a reader that recurses (pydicom) parses stored data: refuse what would crash it.

    Walks the whole structure with the engine (element headers only, memory
    mapped) and refuses sequences nested deeper than the limit and deflated
    data past the inflate cap, with a clear error instead of a RecursionError
    or gigabytes of memory.  Other damage is left for the reader to report as
    it always did.  A file object is put back where it was.

    Raises
    ------
    InvalidDicom
        Nested too deep, or inflating past the cap.
    """
    position = source.tell() if hasattr(source, "tell") else None
    try:
        tagstream.check_complete(source)
    except (DicomDepthError, InflateLimitError) as exc:
        raise InvalidDicom(f"cannot read this dataset: {exc}") from None
    except (tagstream.DicomStreamError, LookupError, TypeError, OverflowError, ValueError):
        pass
    finally:
        if position is not None:
            source.seek(position)


#: Transfer syntaxes whose pixel data is stored as it is: its length backs the claimed size.
NATIVE_SYNTAXES = frozenset({
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
})
_ROWS, _COLUMNS, _SAMPLES = 0x00280010, 0x00280011, 0x00280002


def frame_samples(rows, columns, samples) -> int:
    """rows x columns x samples per pixel (absent or odd values count as 0 / 1 sample)."""
    return max(0, _int(rows)) * max(0, _int(columns)) * max(1, _int(samples))


def _int(value) -> int:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else 0
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def check_pixel_claim(path: str, ident: DicomIdentity, max_pixels: int) -> None:
    """Refuse compressed pixel data whose frames claim more than ``max_pixels`` samples.

    A few hundred bytes of JPEG can claim 65535 x 65535; decoding it later
    would take gigabytes.  Native pixel data is not refused here: its length
    was checked against the file (its bytes are real), and rendering checks
    the claim again before decoding.
    """
    if ident.transfer_syntax_uid in NATIVE_SYNTAXES:
        return
    try:
        found = tagstream.read_attributes(path, tags=(_SAMPLES, _ROWS, _COLUMNS))
    except tagstream.DicomStreamError as exc:
        raise InvalidDicom(f"malformed DICOM: {exc}") from None
    value = lambda tag: found[tag].value if tag in found else None  # noqa: E731
    samples = frame_samples(value(_ROWS), value(_COLUMNS), value(_SAMPLES))
    if samples > max_pixels:
        raise InvalidDicom(f"compressed frames of {samples} samples (Rows x Columns x Samples per Pixel) "
                           f"are larger than this box accepts ({max_pixels})")
