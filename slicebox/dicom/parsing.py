"""Reading what ingest needs from a DICOM Part 10 file, and validating it.

Only the hierarchy attributes are read; pixel data is never decoded.  This is
the face ingest uses; the streaming engine (``dicom.tagstream``) can serve it
without building pydicom objects.
"""
from __future__ import annotations

import logging

import pydicom
from pydicom.errors import InvalidDicomError

from slicebox.errors import InvalidDicom
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

REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

_UID_CHARS = set("0123456789.")


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(_text(v) for v in value)
    return str(value).strip().rstrip("\x00")


def is_valid_uid(uid: str) -> bool:
    """PS3.5 9.1 character set and length.

    The leading-zero rule is not enforced: real devices break it, and losing
    their images would be worse than storing a slightly irregular UID.
    """
    return 0 < len(uid) <= 64 and set(uid) <= _UID_CHARS and ".." not in uid


def has_part10_prefix(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


def read_identity(path: str) -> DicomIdentity:
    """Read the hierarchy attributes of the Part 10 file at ``path``.

    Raises
    ------
    InvalidDicom
        Not a DICOM Part 10 file, no transfer syntax, or a missing/invalid
        Study, Series or SOP Instance UID.
    """
    with open(path, "rb") as fh:
        head = fh.read(132)
        if not has_part10_prefix(head):
            raise InvalidDicom("not a DICOM file: missing the 128-byte preamble and 'DICM' prefix")
        fh.seek(0)
        try:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OverflowError) as exc:
            raise InvalidDicom(f"malformed DICOM: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on garbage
            logger.debug("pydicom failed on %s", path, exc_info=True)
            raise InvalidDicom(f"malformed DICOM: {exc}") from None
    meta = getattr(ds, "file_meta", None)
    tsuid = _text(getattr(meta, "TransferSyntaxUID", "")) if meta is not None else ""
    if not tsuid:
        raise InvalidDicom("file meta information has no Transfer Syntax UID")
    values = {}
    try:
        for keyword, field_name in IDENTITY_KEYWORDS.items():
            values[field_name] = _text(ds.get(keyword))
    except Exception as exc:  # noqa: BLE001 - undecodable values
        raise InvalidDicom(f"malformed DICOM attribute: {exc}") from None
    for keyword in REQUIRED:
        uid = values[IDENTITY_KEYWORDS[keyword]]
        if not uid:
            raise InvalidDicom(f"dataset has no {keyword}")
        if not is_valid_uid(uid):
            raise InvalidDicom(f"{keyword} is not a valid UID: {uid[:80]!r}")
    values["transfer_syntax_uid"] = tsuid
    return DicomIdentity(**values)
