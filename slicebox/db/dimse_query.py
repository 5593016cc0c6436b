"""C-FIND / C-MOVE matching on the hierarchy tables (the columns ``/metadata`` queries use).

A query is a level (``PATIENT``, ``STUDY``, ``SERIES``, ``IMAGE``) and a list of
``(keyword, kind, value)`` matches built by :mod:`slicebox.dicom.query` from a
request identifier (PS3.4 C.2.2.2):

- ``exact``: single value matching (Person Name case-insensitively, as Orthanc does);
- ``wildcard``: ``*`` and ``?`` (becomes ``LIKE``, with ``%``/``_`` escaped);
- ``range``: ``(low, high)``, either may be empty (dates and times compare as text);
- ``list``: a tuple of UIDs (UID list matching).

Keywords are looked up in :data:`COLUMNS`, never pasted into SQL.  Keys of a
level below the query level are ignored (they cannot match at that level).
"""
from __future__ import annotations

from slicebox.db import Connection
from slicebox.db import rows as m

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

#: DICOM keyword -> (level, SQL column)
COLUMNS: dict[str, tuple[str, str]] = {
    "PatientName": ("PATIENT", "p.patient_name"),
    "PatientID": ("PATIENT", "p.patient_id"),
    "PatientBirthDate": ("PATIENT", "p.patient_birth_date"),
    "PatientSex": ("PATIENT", "p.patient_sex"),
    "StudyInstanceUID": ("STUDY", "st.study_instance_uid"),
    "StudyDescription": ("STUDY", "st.study_description"),
    "StudyDate": ("STUDY", "st.study_date"),
    "StudyID": ("STUDY", "st.study_id"),
    "AccessionNumber": ("STUDY", "st.accession_number"),
    "PatientAge": ("STUDY", "st.patient_age"),
    "SeriesInstanceUID": ("SERIES", "se.series_instance_uid"),
    "SeriesDescription": ("SERIES", "se.series_description"),
    "SeriesDate": ("SERIES", "se.series_date"),
    "Modality": ("SERIES", "se.modality"),
    "ProtocolName": ("SERIES", "se.protocol_name"),
    "BodyPartExamined": ("SERIES", "se.body_part_examined"),
    "Manufacturer": ("SERIES", "se.manufacturer"),
    "StationName": ("SERIES", "se.station_name"),
    "FrameOfReferenceUID": ("SERIES", "se.frame_of_reference_uid"),
    "SOPInstanceUID": ("IMAGE", "i.sop_instance_uid"),
    "InstanceNumber": ("IMAGE", "i.instance_number"),
}
_PN = {"PatientName"}

_FROM = {
    "PATIENT": "patients p",
    "STUDY": "studies st JOIN patients p ON p.id = st.patient_id",
    "SERIES": "series se JOIN studies st ON st.id = se.study_id JOIN patients p ON p.id = st.patient_id",
    "IMAGE": "images i JOIN series se ON se.id = i.series_id JOIN studies st ON st.id = se.study_id "
             "JOIN patients p ON p.id = st.patient_id",
}
_SELECT = {
    "PATIENT": (("p", m.PATIENT_COLUMNS),),
    "STUDY": (("p", m.PATIENT_COLUMNS), ("st", m.STUDY_COLUMNS)),
    "SERIES": (("p", m.PATIENT_COLUMNS), ("st", m.STUDY_COLUMNS), ("se", m.SERIES_COLUMNS)),
    "IMAGE": (("p", m.PATIENT_COLUMNS), ("st", m.STUDY_COLUMNS), ("se", m.SERIES_COLUMNS),
              ("i", m.IMAGE_COLUMNS)),
}
_ORDER = {"PATIENT": "p.id", "STUDY": "st.id", "SERIES": "se.id", "IMAGE": "i.id"}
_ALIAS_LEVEL = {"p": "PATIENT", "st": "STUDY", "se": "SERIES", "i": "IMAGE"}
_SQL_TO_KEYWORD = {col: kw for kw, (_, col) in COLUMNS.items()}


def _wildcard(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _where(level: str, matches) -> tuple[list[str], list]:
    depth = LEVELS.index(level)
    where: list[str] = []
    params: list = []
    for keyword, kind, value in matches:
        found = COLUMNS.get(keyword)
        if found is None or LEVELS.index(found[0]) > depth:
            continue
        col = found[1]
        folded = keyword in _PN
        if kind == "exact":
            where.append(f"LOWER({col}) = LOWER(?)" if folded else f"{col} = ?")
            params.append(value)
        elif kind == "wildcard":
            where.append(f"LOWER({col}) LIKE LOWER(?) ESCAPE '\\'" if folded else f"{col} LIKE ? ESCAPE '\\'")
            params.append(_wildcard(value))
        elif kind == "range":
            low, high = value
            where.append(f"{col} <> ''")
            if low:
                where.append(f"{col} >= ?")
                params.append(low)
            if high:
                where.append(f"{col} <= ?")
                params.append(high)
        elif kind == "list":
            values = list(value)[:1000]
            where.append(f"{col} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        else:
            raise ValueError(f"unknown match kind {kind!r}")
    return where, params


def find(conn: Connection, level: str, matches, limit: int) -> list[dict]:
    """Matching rows of ``level`` as ``{keyword: value}`` (this level and above), at most ``limit``.

    Each dict also holds the row ids as ``_patient_id``, ``_study_id``, ``_series_id``, ``_image_id``.
    """
    where, params = _where(level, matches)
    select = ", ".join(f"{alias}.{c} AS {alias}_{c}" for alias, cols in _SELECT[level] for c in cols)
    sql = f"SELECT {select} FROM {_FROM[level]}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {_ORDER[level]} LIMIT ?"
    rows = conn.all(sql, params + [int(limit)])
    out = []
    for row in rows:
        result: dict = {}
        for alias, cols in _SELECT[level]:
            result[f"_{_ALIAS_LEVEL[alias].lower()}_id"] = row[f"{alias}_id"]
            for c in cols:
                keyword = _SQL_TO_KEYWORD.get(f"{alias}.{c}")
                if keyword is not None:
                    result[keyword] = row[f"{alias}_{c}"]
        out.append(result)
    return out


def image_ids(conn: Connection, level: str, matches, limit: int) -> list[int]:
    """Ids of the images below the rows of ``level`` that match (C-MOVE), at most ``limit``."""
    where, params = _where(level, matches)
    sql = f"SELECT i.id FROM {_FROM['IMAGE']}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY i.id LIMIT ?"
    return [r["id"] for r in conn.all(sql, params + [int(limit)])]
