"""Query/Retrieve identifiers (PS3.4 Annex C): what a C-FIND or C-MOVE asks for, and the answers.

Pure functions on pydicom datasets: :func:`parse_identifier` turns a request
identifier into a level, matches (``(keyword, kind, value)``, see
:mod:`slicebox.db.dimse_query`) and the keys to return; :func:`response`
builds one C-FIND response identifier from a matched row.
"""
from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from slicebox.dicom.errors import DicomStreamError

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

#: keywords this box can match and return, by level (PS3.4 C.6 keys it indexes)
KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"),
    "STUDY": ("StudyInstanceUID", "StudyDescription", "StudyDate", "StudyID", "AccessionNumber",
              "PatientAge"),
    "SERIES": ("SeriesInstanceUID", "SeriesDescription", "SeriesDate", "Modality", "ProtocolName",
               "BodyPartExamined", "Manufacturer", "StationName", "FrameOfReferenceUID"),
    "IMAGE": ("SOPInstanceUID", "InstanceNumber"),
}
#: the unique key of each level, always returned
UNIQUE = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID",
          "IMAGE": "SOPInstanceUID"}
_KNOWN = {kw: level for level, kws in KEYS.items() for kw in kws}
_UIDS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"}
_RANGES = {"PatientBirthDate", "StudyDate", "SeriesDate"}
#: Query/Retrieve information models: Patient Root has a PATIENT level, Study Root does not.
PATIENT_ROOT, STUDY_ROOT = "patient", "study"


class QueryError(ValueError):
    """The identifier cannot be processed (answered with a failure status)."""


@dataclass(frozen=True)
class Query:
    level: str
    #: (keyword, kind, value): kind exact / wildcard / range / list
    matches: tuple[tuple[str, str, object], ...]
    #: keywords the peer asked for (in its order), known or not
    requested: tuple[str, ...]


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def parse_identifier(identifier: Dataset, model: str) -> Query:
    """The level, matches and requested keys of a C-FIND / C-MOVE identifier.

    Parameters
    ----------
    identifier : pydicom.dataset.Dataset
        The decoded request identifier.
    model : str
        ``"patient"`` (Patient Root) or ``"study"`` (Study Root).

    Raises
    ------
    QueryError
        No or an unsupported Query/Retrieve Level (0008,0052), or an element that cannot be decoded.
    """
    try:
        level = _text(identifier.get("QueryRetrieveLevel", "")).upper()
        if level not in LEVELS:
            raise QueryError(f"unsupported Query/Retrieve Level {level[:16]!r}")
        if model == STUDY_ROOT and level == "PATIENT":
            raise QueryError("the Study Root model has no PATIENT level")
        depth = LEVELS.index(level)
        matches: list[tuple[str, str, object]] = []
        requested: list[str] = []
        for element in identifier:
            keyword = element.keyword
            if not keyword or keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
                continue
            if element.VR == "SQ":
                requested.append(keyword)
                continue
            requested.append(keyword)
            known = _KNOWN.get(keyword)
            if known is None or LEVELS.index(known) > depth:
                continue
            value = _text(element.value)
            if not value or value == "*":
                continue  # universal matching
            if keyword in _UIDS:
                uids = tuple(v.strip() for v in value.split("\\") if v.strip())
                matches.append((keyword, "list" if len(uids) > 1 else "exact",
                                uids if len(uids) > 1 else uids[0]))
            elif keyword in _RANGES and "-" in value:
                low, _, high = value.partition("-")
                matches.append((keyword, "range", (low.strip(), high.strip())))
            elif "*" in value or "?" in value:
                matches.append((keyword, "wildcard", value))
            else:
                matches.append((keyword, "exact", value))
    except QueryError:
        raise
    except (DicomStreamError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise QueryError(f"cannot decode the identifier: {exc}") from None
    return Query(level, tuple(matches), tuple(requested))


def response(query: Query, row: dict) -> Dataset:
    """One C-FIND response identifier: the requested keys (empty when unknown) plus the level's unique key."""
    ds = Dataset()
    ds.QueryRetrieveLevel = query.level
    depth = LEVELS.index(query.level)
    wanted = list(query.requested)
    for level in LEVELS[:depth + 1]:
        if UNIQUE[level] not in wanted and (level != "PATIENT" or query.level == "PATIENT"):
            wanted.append(UNIQUE[level])
    non_ascii = False
    for keyword in wanted:
        known = _KNOWN.get(keyword)
        value = ""
        if known is not None and LEVELS.index(known) <= depth:
            value = row.get(keyword) or ""
        if keyword == "InstanceNumber" and value and not str(value).lstrip("-").isdigit():
            value = ""
        try:
            setattr(ds, keyword, value if value != "" else None)
        except (ValueError, TypeError):
            setattr(ds, keyword, None)
        if isinstance(value, str) and not value.isascii():
            non_ascii = True
    if non_ascii:
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds
