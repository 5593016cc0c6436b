"""Repository of the DICOM hierarchy: patients, studies, series, images.

Find-or-create uses ``INSERT .. ON CONFLICT .. DO UPDATE .. RETURNING`` so that
concurrent ingests of one new study create exactly one row per level (the
unique constraints decide, not a check-then-insert race).  Non-key attributes
are last-write-wins.
"""
from __future__ import annotations

from slicebox.db import Connection, querybuild
from slicebox.db.rows import (
    IMAGE_COLUMNS,
    PATIENT_COLUMNS,
    SERIES_COLUMNS,
    STUDY_COLUMNS,
    row_to_image,
    row_to_patient,
    row_to_series,
    row_to_study,
)
from slicebox.models import DicomIdentity, Image, Patient, Series, SeriesTag, SeriesType, Source, Study


def _upsert(conn: Connection, table: str, keys: tuple, values: dict, columns: tuple) -> dict:
    names = list(values)
    updates = [n for n in names if n not in keys]
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{n} = excluded.{n}" for n in updates)
        + f" RETURNING {', '.join(columns)}"
    )
    return conn.one(sql, [values[n] for n in names])


def _upsert_telling(conn: Connection, table: str, keys: tuple, values: dict,
                    columns: tuple) -> tuple[dict, bool]:
    """:func:`_upsert` that also says whether the row was inserted (True) or updated.

    Must run inside a transaction: on a back-end without an "inserted" flag the
    insert and the update are two statements.
    """
    flag = conn.dialect.upsert_inserted
    names = list(values)
    updates = [n for n in names if n not in keys]
    insert = (f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
              f"ON CONFLICT ({', '.join(keys)}) ")
    if flag is not None:
        row = conn.one(
            insert + "DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in updates)
            + f" RETURNING {', '.join(columns)}, {flag} AS row_inserted",
            [values[n] for n in names])
        return row, bool(row.pop("row_inserted"))
    row = conn.one(insert + f"DO NOTHING RETURNING {', '.join(columns)}", [values[n] for n in names])
    if row is not None:
        return row, True
    row = conn.one(
        f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in updates)} "
        f"WHERE {' AND '.join(f'{k} = ?' for k in keys)} RETURNING {', '.join(columns)}",
        [values[n] for n in updates] + [values[k] for k in keys])
    return row, False


def upsert_patient(conn: Connection, ident: DicomIdentity) -> Patient:
    row = _upsert(conn, "patients", ("patient_name", "patient_id"), {
        "patient_name": ident.patient_name,
        "patient_id": ident.patient_id,
        "patient_birth_date": ident.patient_birth_date,
        "patient_sex": ident.patient_sex,
    }, PATIENT_COLUMNS)
    return row_to_patient(row)


def upsert_study(conn: Connection, patient_id: int, ident: DicomIdentity) -> Study:
    row = _upsert(conn, "studies", ("patient_id", "study_instance_uid"), {
        "patient_id": patient_id,
        "study_instance_uid": ident.study_instance_uid,
        "study_description": ident.study_description,
        "study_date": ident.study_date,
        "study_id": ident.study_id,
        "accession_number": ident.accession_number,
        "patient_age": ident.patient_age,
    }, STUDY_COLUMNS)
    return row_to_study(row)


def upsert_series(conn: Connection, study_id: int, ident: DicomIdentity) -> tuple[Series, bool]:
    """Insert or update the series row; return (series, whether the row is new)."""
    row, inserted = _upsert_telling(conn, "series", ("study_id", "series_instance_uid"), {
        "study_id": study_id,
        "series_instance_uid": ident.series_instance_uid,
        "series_description": ident.series_description,
        "series_date": ident.series_date,
        "modality": ident.modality,
        "protocol_name": ident.protocol_name,
        "body_part_examined": ident.body_part_examined,
        "manufacturer": ident.manufacturer,
        "station_name": ident.station_name,
        "frame_of_reference_uid": ident.frame_of_reference_uid,
    }, SERIES_COLUMNS)
    return row_to_series(row), inserted


def insert_image(conn: Connection, series_id: int, ident: DicomIdentity,
                 image_id: int | None = None) -> tuple[Image, bool]:
    """Insert the image row; return (image, created).  An existing row is kept as it is.

    ``image_id``: an id from :func:`reserve_image_id` (the bytes are already
    stored under it); None lets the database number the row.
    """
    columns = ["series_id", "sop_instance_uid", "image_type", "instance_number"]
    values = [series_id, ident.sop_instance_uid, ident.image_type, ident.instance_number]
    if image_id is not None:
        columns.insert(0, "id")
        values.insert(0, int(image_id))
    row = conn.one(
        f"INSERT INTO images ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)}) ON CONFLICT (series_id, sop_instance_uid) DO NOTHING "
        f"RETURNING {', '.join(IMAGE_COLUMNS)}",
        values,
    )
    if row is not None:
        return row_to_image(row), True
    row = conn.one(
        f"SELECT {', '.join(IMAGE_COLUMNS)} FROM images WHERE series_id = ? AND sop_instance_uid = ?",
        (series_id, ident.sop_instance_uid),
    )
    return row_to_image(row), False


def reserve_image_id(conn: Connection) -> int:
    """A new image id no other row will get, for storing the bytes before the row exists.

    PostgreSQL: the identity sequence's next value (no lock, never rolled back).
    SQLite: the AUTOINCREMENT counter, bumped in a short write transaction
    (``conn`` must be inside one).
    """
    if conn.dialect.name == "postgresql":
        return int(conn.scalar("SELECT nextval(pg_get_serial_sequence('images', 'id'))"))
    conn.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'images', COALESCE(MAX(id), 0) FROM images "
                 "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'images')")
    return int(conn.scalar("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'images' RETURNING seq"))


def find_image_id(conn: Connection, ident: DicomIdentity) -> int | None:
    """The id of the stored image with this identity (patient, study, series, SOP instance), or None."""
    return conn.scalar(
        "SELECT i.id FROM images i JOIN series se ON se.id = i.series_id "
        "JOIN studies st ON st.id = se.study_id JOIN patients p ON p.id = st.patient_id "
        "WHERE i.sop_instance_uid = ? AND se.series_instance_uid = ? AND st.study_instance_uid = ? "
        "AND p.patient_name = ? AND p.patient_id = ?",
        (ident.sop_instance_uid, ident.series_instance_uid, ident.study_instance_uid,
         ident.patient_name, ident.patient_id))


def upsert_series_source(conn: Connection, series_id: int, source: Source) -> None:
    conn.execute(
        "INSERT INTO series_sources (series_id, source_type, source_name, source_id) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (series_id) DO UPDATE SET "
        "source_type = excluded.source_type, source_name = excluded.source_name, "
        "source_id = excluded.source_id",
        (series_id, source.type, source.name, source.id),
    )


def get_series_source(conn: Connection, series_id: int) -> Source | None:
    row = conn.one(
        "SELECT source_type, source_name, source_id FROM series_sources WHERE series_id = ?",
        (series_id,),
    )
    return None if row is None else Source(row["source_type"], row["source_name"], row["source_id"])


def get_patient(conn: Connection, patient_id: int) -> Patient | None:
    row = conn.one(f"SELECT {', '.join(PATIENT_COLUMNS)} FROM patients WHERE id = ?", (patient_id,))
    return None if row is None else row_to_patient(row)


def get_study(conn: Connection, study_id: int) -> Study | None:
    row = conn.one(f"SELECT {', '.join(STUDY_COLUMNS)} FROM studies WHERE id = ?", (study_id,))
    return None if row is None else row_to_study(row)


def get_series(conn: Connection, series_id: int) -> Series | None:
    row = conn.one(f"SELECT {', '.join(SERIES_COLUMNS)} FROM series WHERE id = ?", (series_id,))
    return None if row is None else row_to_series(row)


def get_image(conn: Connection, image_id: int) -> Image | None:
    row = conn.one(f"SELECT {', '.join(IMAGE_COLUMNS)} FROM images WHERE id = ?", (image_id,))
    return None if row is None else row_to_image(row)


def delete_images(conn: Connection, image_ids: list[int]) -> list[int]:
    """Delete images and every series, study and patient left empty; return deleted image ids."""
    deleted: list[int] = []
    for start in range(0, len(image_ids), 500):
        chunk = [int(i) for i in image_ids[start:start + 500]]
        marks = ", ".join("?" for _ in chunk)
        # DELETE .. RETURNING, not SELECT then DELETE: under PostgreSQL's read
        # committed a row a concurrent transaction deleted first is then not
        # reported as deleted by this one too.
        rows = conn.all(f"DELETE FROM images WHERE id IN ({marks}) RETURNING id, series_id", chunk)
        if not rows:
            continue
        deleted.extend(r["id"] for r in rows)
        delete_empty_parents(conn, sorted({r["series_id"] for r in rows}))
    return deleted


def delete_image(conn: Connection, image_id: int) -> int | None:
    """Delete one image row (not its parents); return its series id, None if it was not there.

    The row lock the DELETE takes makes a concurrent deleter of the same
    image wait and then see that it is gone.
    """
    row = conn.one("DELETE FROM images WHERE id = ? RETURNING series_id", (image_id,))
    return None if row is None else row["series_id"]


def delete_empty_parents(conn: Connection, series_ids: list[int]) -> None:
    """Delete those of ``series_ids`` that have no image, then studies and patients left empty."""
    if not series_ids:
        return
    smarks = ", ".join("?" for _ in series_ids)
    study_ids = [r["study_id"] for r in conn.all(
        f"SELECT DISTINCT study_id FROM series WHERE id IN ({smarks})", series_ids)]
    conn.execute(
        f"DELETE FROM series WHERE id IN ({smarks}) "
        "AND NOT EXISTS (SELECT 1 FROM images i WHERE i.series_id = series.id)", series_ids)
    if study_ids:
        tmarks = ", ".join("?" for _ in study_ids)
        patient_ids = [r["patient_id"] for r in conn.all(
            f"SELECT DISTINCT patient_id FROM studies WHERE id IN ({tmarks})", study_ids)]
        conn.execute(
            f"DELETE FROM studies WHERE id IN ({tmarks}) "
            "AND NOT EXISTS (SELECT 1 FROM series s WHERE s.study_id = studies.id)", study_ids)
        if patient_ids:
            pmarks = ", ".join("?" for _ in patient_ids)
            conn.execute(
                f"DELETE FROM patients WHERE id IN ({pmarks}) "
                "AND NOT EXISTS (SELECT 1 FROM studies s WHERE s.patient_id = patients.id)",
                patient_ids)


# -- browsing and queries (Meta Data API) ------------------------------------------
# Listings of every level go through the one builder in db/querybuild.py.

def list_level(conn: Connection, level_name: str, spec) -> list:
    """Patients, studies, series, flat series or images matching a querybuild.ListSpec."""
    return querybuild.fetch(conn, level_name, spec)


# -- series tags ---------------------------------------------------------------------

def _tag(row: dict) -> SeriesTag:
    return SeriesTag(id=row["id"], name=row["name"])


def list_series_tags_in_use(conn: Connection) -> list[SeriesTag]:
    """Tags attached to at least one series (tags whose series are gone are not shown)."""
    return [_tag(r) for r in conn.all(
        "SELECT t.id, t.name FROM series_tags t WHERE EXISTS "
        "(SELECT 1 FROM series_series_tags x WHERE x.series_tag_id = t.id) ORDER BY t.name, t.id")]


def series_tags_of_series(conn: Connection, series_id: int) -> list[SeriesTag]:
    return [_tag(r) for r in conn.all(
        "SELECT t.id, t.name FROM series_tags t JOIN series_series_tags x ON x.series_tag_id = t.id "
        "WHERE x.series_id = ? ORDER BY t.name, t.id", (series_id,))]


def tag_series(conn: Connection, series_id: int, name: str) -> SeriesTag:
    """Attach the tag called ``name`` to a series, creating the tag if needed."""
    # DO UPDATE (a no-op) rather than DO NOTHING so RETURNING yields the existing row.
    row = conn.one(
        "INSERT INTO series_tags (name) VALUES (?) ON CONFLICT (name) DO UPDATE SET name = excluded.name "
        "RETURNING id, name", (name,))
    conn.execute(
        "INSERT INTO series_series_tags (series_id, series_tag_id) VALUES (?, ?) "
        "ON CONFLICT (series_id, series_tag_id) DO NOTHING", (series_id, row["id"]))
    return _tag(row)


def attach_series_tags(conn: Connection, series_id: int, series_tag_ids: list[int]) -> None:
    """Attach existing tags (by id) to a series; tags it already has are kept."""
    for tag_id in series_tag_ids:
        conn.execute(
            "INSERT INTO series_series_tags (series_id, series_tag_id) VALUES (?, ?) "
            "ON CONFLICT (series_id, series_tag_id) DO NOTHING", (series_id, tag_id))


def untag_series(conn: Connection, series_id: int, series_tag_id: int) -> None:
    conn.execute("DELETE FROM series_series_tags WHERE series_id = ? AND series_tag_id = ?",
                 (series_id, series_tag_id))


# -- series types on series -----------------------------------------------------------

def _type(row: dict) -> SeriesType:
    return SeriesType(id=row["id"], name=row["name"])


def get_series_type(conn: Connection, series_type_id: int) -> SeriesType | None:
    row = conn.one("SELECT id, name FROM series_types WHERE id = ?", (series_type_id,))
    return None if row is None else _type(row)


def series_types_of_series(conn: Connection, series_id: int) -> list[SeriesType]:
    return [_type(r) for r in conn.all(
        "SELECT t.id, t.name FROM series_types t JOIN series_series_types x ON x.series_type_id = t.id "
        "WHERE x.series_id = ? ORDER BY t.id", (series_id,))]


def add_series_type_to_series(conn: Connection, series_id: int, series_type_id: int) -> None:
    conn.execute(
        "INSERT INTO series_series_types (series_id, series_type_id, by_rule) VALUES (?, ?, 0) "
        # a user's label outlives the rules' re-evaluations
        "ON CONFLICT (series_id, series_type_id) DO UPDATE SET by_rule = 0", (series_id, series_type_id))


def remove_series_type_from_series(conn: Connection, series_id: int, series_type_id: int) -> None:
    conn.execute("DELETE FROM series_series_types WHERE series_id = ? AND series_type_id = ?",
                 (series_id, series_type_id))


def remove_series_types_from_series(conn: Connection, series_id: int) -> None:
    conn.execute("DELETE FROM series_series_types WHERE series_id = ?", (series_id,))


def series_types_of_many_series(conn: Connection, series_ids: list[int]) -> list[tuple[int, SeriesType]]:
    """(series id, type) pairs for the given series, ordered by series id then type id."""
    result: list[tuple[int, SeriesType]] = []
    ids = sorted({int(i) for i in series_ids})
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = conn.all(
            "SELECT x.series_id, t.id, t.name FROM series_series_types x "
            f"JOIN series_types t ON t.id = x.series_type_id WHERE x.series_id IN ({marks}) "
            "ORDER BY x.series_id, t.id", chunk)
        result.extend((r["series_id"], _type(r)) for r in rows)
    return result
