"""Anonymization: pseudonyms, keys and their operations (profiles live in dicom/profiles.py).

Pseudonyms are rows of ``anonymization_identities``; two UNIQUE constraints
(real value per kind, anonymous value per kind) decide every race, so any
number of workers, threads or processes anonymizing images of one patient at
once agree on one anonymous name/ID and one anonymous UID per real UID, and no
anonymous value ever stands for two real ones.  A mapping never changes once
written, which is why a per-process cache in front of it is safe.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Iterable, Iterator

from slicebox.clock import now_ms
from slicebox.context import Services
from slicebox.db import anonymization as repo
from slicebox.dicom import profiles
from slicebox.dicom.anonymization_plan import (
    PATIENT_ID,
    PATIENT_NAME,
    SERIES_UID,
    SOP_UID,
    STUDY_UID,
    PlanContext,
    changed_values,
    text,
)
from slicebox.errors import BadRequest, NotFound
from slicebox.models import AnonymizationKey, AnonymizationKeyValue, ListSpec, Page

logger = logging.getLogger(__name__)

KIND_PATIENT = "patient"
KIND_UID = "uid"
_CACHE_LIMIT = 200_000
#: a date shift moves dates back by 1..3650 days (whole days keep times and weekdays' intervals)
_MAX_SHIFT_DAYS = 3650


def _clean(value: str | None) -> str:
    # DICOM pads with spaces (text) or NUL (UI); padding does not change identity.
    return (value or "").strip(" \x00")


# -- options ---------------------------------------------------------------------------
def list_options() -> list[profiles.ConfidentialityOption]:
    """Every supported confidentiality option (basic profile first, by rank)."""
    return profiles.list_options()


# -- pseudonyms ------------------------------------------------------------------------
def _cache(services: Services) -> dict:
    return services.state.pseudonyms


def _identity(services: Services, kind: str, scope: str, real: str, make) -> dict:
    """The row for (kind, scope, real), creating it with ``make()`` if absent."""
    cache = _cache(services)
    key = (kind, scope, real)
    hit = cache.get(key)
    if hit is not None:
        return hit
    with services.db.connection() as conn:
        row = None
        attempts = 0
        while row is None:
            attempts += 1
            if attempts > 8:  # only reachable if candidates keep colliding
                raise RuntimeError(f"could not allocate a pseudonym of kind {kind}")
            anon_value, date_shift = make()
            # Insert first: most misses of this process's cache are values never
            # seen (every image's own SOP Instance UID), so one statement usually
            # settles it.  A row already there for the real value (another worker,
            # an earlier run) or a colliding anonymous value both insert nothing;
            # the SELECT tells which happened.
            row = repo.insert_identity(conn, kind, scope, real, anon_value, date_shift, now_ms())
            if row is None:
                row = repo.find_identity(conn, kind, scope, real)
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = row
    return row


def _new_patient() -> tuple[str, int]:
    token = secrets.token_hex(6).upper()
    shift = -(secrets.randbelow(_MAX_SHIFT_DAYS) + 1)
    return json.dumps([f"ANONYMOUS^{token}", f"ANON{token}"]), shift


def _patient_row(services: Services, name: str, patient_id: str) -> dict:
    real = json.dumps([_clean(name), _clean(patient_id)], ensure_ascii=False)
    return _identity(services, KIND_PATIENT, "", real, _new_patient)


def pseudonym_for_patient(services: Services, name: str, patient_id: str) -> tuple[str, str]:
    """(anonymous patient name, anonymous patient ID) for a real patient, the same every time."""
    anon_name, anon_id = json.loads(_patient_row(services, name, patient_id)["anon_value"])
    return anon_name, anon_id


def date_shift_for_patient(services: Services, name: str, patient_id: str) -> int:
    """Days (negative) to add to this patient's dates under the Modified Dates option."""
    return int(_patient_row(services, name, patient_id)["date_shift"])


def new_uid() -> str:
    """A fresh UID under the UUID-derived root 2.25 (PS3.5 B.2)."""
    return f"2.25.{uuid.uuid4().int}"


def anon_uid(services: Services, uid: str) -> str:
    """The anonymous UID for ``uid``: one-to-one and stable on this box ("" stays "")."""
    real = _clean(uid)
    if not real:
        return ""
    return _identity(services, KIND_UID, "", real, lambda: (new_uid(), 0))["anon_value"]


def plan_context(services: Services, real: dict, shift_dates: bool) -> PlanContext:
    """This box's pseudonyms (and date shift, when asked) for the patient of ``real`` root attributes."""
    name, pid = text(real.get(PATIENT_NAME)), text(real.get(PATIENT_ID))
    anon_name, anon_id = pseudonym_for_patient(services, name, pid)
    shift = date_shift_for_patient(services, name, pid) if shift_dates else 0
    return PlanContext(anon_name, anon_id, shift, lambda uid: anon_uid(services, uid))


# -- keys ------------------------------------------------------------------------------
def record_anonymization(services: Services, image_id: int, real: dict, anon: dict) -> AnonymizationKey:
    """Record the key of one anonymization from the root attributes before (``real``) and after."""
    key = AnonymizationKey(
        id=0, created=0, image_id=image_id,
        patient_name=text(real.get(PATIENT_NAME)), anon_patient_name=text(anon.get(PATIENT_NAME)),
        patient_id=text(real.get(PATIENT_ID)), anon_patient_id=text(anon.get(PATIENT_ID)),
        study_instance_uid=text(real.get(STUDY_UID)), anon_study_instance_uid=text(anon.get(STUDY_UID)),
        series_instance_uid=text(real.get(SERIES_UID)), anon_series_instance_uid=text(anon.get(SERIES_UID)),
        sop_instance_uid=text(real.get(SOP_UID)), anon_sop_instance_uid=text(anon.get(SOP_UID)),
    )
    return record_key(services, key, changed_values(real, anon))


def record_key(services: Services, key: AnonymizationKey,
               key_values: Iterable[tuple[str, str, str]] = ()) -> AnonymizationKey:
    """Store a key (its id and created are assigned here) with (tag path, value, anonymized value)s."""
    with services.db.transaction() as conn:
        stored = repo.insert_key(conn, key, now_ms())
        repo.insert_key_values(conn, stored.id, key_values)
    return stored


@dataclass(frozen=True)
class KeyMatch:
    """A key found for anonymous data; ``level`` is image, series, study or patient."""

    level: str
    key: AnonymizationKey
    values: list[AnonymizationKeyValue]


def find_key_for_anonymous(services: Services, anon_patient_name: str, anon_patient_id: str,
                           anon_study_uid: str = "", anon_series_uid: str = "",
                           anon_sop_uid: str = "") -> KeyMatch | None:
    """The best key for anonymous identities: image level, then series, study, patient."""
    values = {
        "anon_patient_name": _clean(anon_patient_name),
        "anon_patient_id": _clean(anon_patient_id),
        "anon_study_instance_uid": _clean(anon_study_uid),
        "anon_series_instance_uid": _clean(anon_series_uid),
        "anon_sop_instance_uid": _clean(anon_sop_uid),
    }
    with services.db.connection() as conn:
        found = repo.find_key_by_anonymous(conn, values)
        if found is None:
            return None
        level, key = found
        return KeyMatch(level, key, repo.key_values(conn, key.id))


def _column(name) -> str:
    column = repo.KEY_PROPERTIES.get(name) if isinstance(name, str) else None
    if column is None:
        raise BadRequest(f"Property {name} does not exist")
    return column


def list_keys(services: Services, page: Page, order_by: str | None = None, ascending: bool = True,
              text_filter: str | None = None) -> list[AnonymizationKey]:
    """A page of keys, optionally ordered by a key property and filtered by a substring."""
    column = _column(order_by) if order_by else None
    with services.db.connection() as conn:
        return repo.list_keys(conn, page.start_index, page.count, column, ascending, text_filter or None)


def get_key(services: Services, key_id: int) -> AnonymizationKey:
    with services.db.connection() as conn:
        key = repo.get_key(conn, key_id)
    if key is None:
        raise NotFound(f"anonymization key {key_id} not found")
    return key


def delete_key(services: Services, key_id: int) -> None:
    """Delete a key and its values (an unknown id is ignored)."""
    with services.db.transaction() as conn:
        repo.delete_key(conn, key_id)


def key_values(services: Services, key_id: int) -> list[AnonymizationKeyValue]:
    with services.db.connection() as conn:
        if repo.get_key(conn, key_id) is None:
            raise NotFound(f"anonymization key {key_id} not found")
        return repo.key_values(conn, key_id)


def query_keys(services: Services, spec: ListSpec) -> list[AnonymizationKey]:
    """Keys matching a query: every condition must hold (AND); names are key properties."""
    conditions = [(_column(c.property), c.operator, c.value) for c in spec.conditions]
    column = _column(spec.order_by) if spec.order_by else None
    with services.db.connection() as conn:
        return repo.list_keys(conn, spec.start_index, spec.count, column, spec.ascending, None, conditions)


CSV_HEADER = ("ID", "Image ID", "Created", "Patient Name", "Anonymous Patient Name", "Patient ID",
              "Anonymous Patient ID", "Study Instance UID", "Anonymous Study Instance UID",
              "Series Instance UID", "Anonymous Series Instance UID", "SOP Instance UID",
              "Anonymous SOP Instance UID", "Tag Path", "Value", "Anonymized Value")
#: key columns in CSV_HEADER order
_CSV_KEY_COLUMNS = ("id", "image_id", "created") + repo.KEY_COLUMNS[3:]
_CSV_BATCH = 500


def _cell(value) -> str:
    text = "" if value is None else str(value)
    # A cell starting like a formula would run in a spreadsheet (CSV injection);
    # DICOM values come from outside the box, so neutralize them.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def export_keys_csv(services: Services) -> Iterator[str]:
    """All keys with their values as semicolon-separated CSV, produced in batches.

    Columns as in Slicebox 2.0; one row per key and key value (a key without
    values gives one row with empty value columns).  Each batch uses its own
    short connection, so a slow download holds no database connection.
    """
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    yield out.getvalue()
    last_id = 0
    while True:
        with services.db.connection() as conn:
            rows = repo.export_rows(conn, last_id, _CSV_BATCH)
        if not rows:
            return
        out.seek(0)
        out.truncate()
        for row in rows:
            writer.writerow([_cell(row[c]) for c in _CSV_KEY_COLUMNS]
                            + [_cell(row["tag_path"]), _cell(row["value"]), _cell(row["anonymized_value"])])
            last_id = max(last_id, row["id"])
        yield out.getvalue()
