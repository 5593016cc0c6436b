"""Repository of anonymization keys, key values and pseudonyms (identities).

Column names in ORDER BY / WHERE come only from :data:`KEY_PROPERTIES` (a
whitelist keyed by the spec's JSON names); every value is a bound parameter.
"""
from __future__ import annotations

from typing import Iterable

from slicebox.db import Connection
from slicebox.db.dialect import check_terms, like_pattern
from slicebox.models import AnonymizationKey, AnonymizationKeyValue

KEY_COLUMNS = ("id", "created", "image_id", "patient_name", "anon_patient_name", "patient_id",
               "anon_patient_id", "study_instance_uid", "anon_study_instance_uid",
               "series_instance_uid", "anon_series_instance_uid", "sop_instance_uid",
               "anon_sop_instance_uid")
_KEY_SELECT = ", ".join(KEY_COLUMNS)
VALUE_COLUMNS = ("id", "anonymization_key_id", "tag_path", "value", "anonymized_value")

#: JSON property name (spec) -> column; snake_case column names are accepted too
KEY_PROPERTIES = {
    "id": "id", "created": "created", "imageId": "image_id",
    "patientName": "patient_name", "anonPatientName": "anon_patient_name",
    "patientID": "patient_id", "anonPatientID": "anon_patient_id",
    "studyInstanceUID": "study_instance_uid", "anonStudyInstanceUID": "anon_study_instance_uid",
    "seriesInstanceUID": "series_instance_uid", "anonSeriesInstanceUID": "anon_series_instance_uid",
    "sopInstanceUID": "sop_instance_uid", "anonSOPInstanceUID": "anon_sop_instance_uid",
}
KEY_PROPERTIES.update({c: c for c in KEY_COLUMNS})
#: the human-readable columns the list filter searches
FILTER_COLUMNS = KEY_COLUMNS[3:]


def _key(row: dict) -> AnonymizationKey:
    return AnonymizationKey(**{c: row[c] for c in KEY_COLUMNS})


def _value(row: dict) -> AnonymizationKeyValue:
    return AnonymizationKeyValue(**{c: row[c] for c in VALUE_COLUMNS})


# -- keys -----------------------------------------------------------------------------
def insert_key(conn: Connection, key: AnonymizationKey, created: int) -> AnonymizationKey:
    names = KEY_COLUMNS[1:]
    values = [created, key.image_id] + [getattr(key, c) or "" for c in names[2:]]
    row = conn.one(
        f"INSERT INTO anonymization_keys ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
        f"RETURNING {_KEY_SELECT}",
        values,
    )
    return _key(row)


#: rows per multi-row INSERT of key values (4 parameters each: far below SQLite's 32766 limit)
_VALUES_PER_INSERT = 500


def insert_key_values(conn: Connection, key_id: int, values: Iterable[tuple[str, str, str]]) -> int:
    """Insert (tag path, value, anonymized value)s of a key; returns how many.

    One multi-row INSERT per batch rather than one statement per value: a key
    has about ten values and each statement is a round trip (PostgreSQL) or a
    separate step through the indexes' pages (SQLite).
    """
    rows = [(key_id, tag_path, value or "", anonymized or "") for tag_path, value, anonymized in values]
    for start in range(0, len(rows), _VALUES_PER_INSERT):
        batch = rows[start:start + _VALUES_PER_INSERT]
        conn.execute(
            "INSERT INTO anonymization_key_values (anonymization_key_id, tag_path, value, anonymized_value) "
            "VALUES " + ", ".join(["(?, ?, ?, ?)"] * len(batch)),
            [v for row in batch for v in row],
        )
    return len(rows)


def get_key(conn: Connection, key_id: int) -> AnonymizationKey | None:
    row = conn.one(f"SELECT {_KEY_SELECT} FROM anonymization_keys WHERE id = ?", (key_id,))
    return None if row is None else _key(row)


def delete_key(conn: Connection, key_id: int) -> None:
    # Key values go by ON DELETE CASCADE; delete them explicitly too, so a SQLite
    # connection without foreign_keys enforcement leaves nothing behind.
    conn.execute("DELETE FROM anonymization_key_values WHERE anonymization_key_id = ?", (key_id,))
    conn.execute("DELETE FROM anonymization_keys WHERE id = ?", (key_id,))


def key_values(conn: Connection, key_id: int) -> list[AnonymizationKeyValue]:
    rows = conn.all(
        f"SELECT {', '.join(VALUE_COLUMNS)} FROM anonymization_key_values "
        "WHERE anonymization_key_id = ? ORDER BY id",
        (key_id,),
    )
    return [_value(r) for r in rows]


def list_keys(conn: Connection, start: int, count: int, order_column: str | None, ascending: bool,
              text_filter: str | None, conditions: list[tuple[str, str, str]] = ()) -> list[AnonymizationKey]:
    """A page of keys.  ``order_column`` and condition columns must come from KEY_PROPERTIES.

    ``conditions`` are (column, operator '=' or 'like', value); 'like' is a
    case-insensitive substring match.
    """
    where, params = [], []
    check_terms(len(conditions))
    if text_filter:
        where.append("(" + " OR ".join(f"LOWER({c}) LIKE ? ESCAPE '\\'" for c in FILTER_COLUMNS) + ")")
        params.extend([like_pattern(text_filter)] * len(FILTER_COLUMNS))
    for column, operator, value in conditions:
        if column not in KEY_COLUMNS:
            raise ValueError(f"not a key column: {column}")
        if operator == "like":
            where.append(f"LOWER(CAST({column} AS TEXT)) LIKE ? ESCAPE '\\'")
            params.append(like_pattern(value))
        else:
            where.append(f"CAST({column} AS TEXT) = ?")
            params.append(value)
    if order_column is not None and order_column not in KEY_COLUMNS:
        raise ValueError(f"not a key column: {order_column}")
    direction = "ASC" if ascending else "DESC"
    order = f"{order_column} {direction}, id {direction}" if order_column else "id ASC"
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = conn.all(
        f"SELECT {_KEY_SELECT} FROM anonymization_keys {clause}ORDER BY {order} LIMIT ? OFFSET ?",
        params + [count, start],
    )
    return [_key(r) for r in rows]


def export_rows(conn: Connection, after_id: int, limit: int) -> list[dict]:
    """Keys with id > after_id (at most ``limit`` keys) left-joined with their values."""
    return conn.all(
        f"SELECT {', '.join('k.' + c for c in KEY_COLUMNS)}, v.tag_path, v.value, v.anonymized_value "
        "FROM (SELECT * FROM anonymization_keys WHERE id > ? ORDER BY id LIMIT ?) k "
        "LEFT JOIN anonymization_key_values v ON v.anonymization_key_id = k.id "
        "ORDER BY k.id, v.id",
        (after_id, limit),
    )


# Match levels for reverse anonymization, most specific first.
_ANON_LEVELS = (
    ("image", ("anon_patient_name", "anon_patient_id", "anon_study_instance_uid",
               "anon_series_instance_uid", "anon_sop_instance_uid")),
    ("series", ("anon_patient_name", "anon_patient_id", "anon_study_instance_uid",
                "anon_series_instance_uid")),
    ("study", ("anon_patient_name", "anon_patient_id", "anon_study_instance_uid")),
    ("patient", ("anon_patient_name", "anon_patient_id")),
)


def find_key_by_anonymous(conn: Connection, values: dict[str, str]) -> tuple[str, AnonymizationKey] | None:
    """The newest key matching the anonymous identities at the most specific level."""
    for level, columns in _ANON_LEVELS:
        if any(not values.get(c) for c in columns):
            continue
        row = conn.one(
            f"SELECT {_KEY_SELECT} FROM anonymization_keys WHERE "
            + " AND ".join(f"{c} = ?" for c in columns)
            + " ORDER BY id DESC LIMIT 1",
            [values[c] for c in columns],
        )
        if row is not None:
            return level, _key(row)
    return None


# -- pseudonyms -------------------------------------------------------------------------
def find_identity(conn: Connection, kind: str, scope: str, real_value: str) -> dict | None:
    return conn.one(
        "SELECT anon_value, date_shift FROM anonymization_identities "
        "WHERE kind = ? AND scope = ? AND real_value = ?",
        (kind, scope, real_value),
    )


def is_anonymous_value(conn: Connection, kind: str, anon_value: str) -> bool:
    """Whether ``anon_value`` is a pseudonym of ``kind`` this box made (uses the unique anon index)."""
    return conn.scalar("SELECT COUNT(*) FROM anonymization_identities WHERE kind = ? AND anon_value = ?",
                       (kind, anon_value)) > 0


def insert_identity(conn: Connection, kind: str, scope: str, real_value: str, anon_value: str,
                    date_shift: int, created: int) -> dict | None:
    """Insert a pseudonym; the new row's (anon_value, date_shift), or None when either
    unique constraint already holds a row (then nothing is written)."""
    return conn.one(
        "INSERT INTO anonymization_identities (kind, scope, real_value, anon_value, date_shift, created) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING anon_value, date_shift",
        (kind, scope, real_value, anon_value, date_shift, created),
    )
