"""Repository of export sets (image id lists with an expiry)."""
from __future__ import annotations

import json

from slicebox.db import Connection


def insert(conn: Connection, created: int, expires: int, image_ids: list[int]) -> int:
    return conn.scalar(
        "INSERT INTO export_sets (created, expires, image_ids) VALUES (?, ?, ?) RETURNING id",
        (created, expires, json.dumps(image_ids)),
    )


def get(conn: Connection, export_id: int, now: int) -> list[int] | None:
    row = conn.one("SELECT image_ids FROM export_sets WHERE id = ? AND expires > ?", (export_id, now))
    return None if row is None else json.loads(row["image_ids"])


def purge(conn: Connection, now: int) -> int:
    return conn.execute("DELETE FROM export_sets WHERE expires <= ?", (now,)).rowcount


def existing_image_ids(conn: Connection, image_ids: list[int]) -> list[int]:
    """Those of ``image_ids`` that exist, in the given order, without duplicates."""
    found: set[int] = set()
    unique = list(dict.fromkeys(int(i) for i in image_ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        found.update(r["id"] for r in conn.all(f"SELECT id FROM images WHERE id IN ({marks})", chunk))
    return [i for i in unique if i in found]


def export_entries(conn: Connection, image_ids: list[int]) -> list[dict]:
    """The hierarchy values export file names are built from, for the images that still exist."""
    rows: list[dict] = []
    for start in range(0, len(image_ids), 500):
        chunk = [int(i) for i in image_ids[start:start + 500]]
        marks = ", ".join("?" for _ in chunk)
        rows.extend(conn.all(
            "SELECT p.id AS patient_id, p.patient_name, p.patient_id AS patient_dicom_id, "
            "st.id AS study_id, st.study_date, se.id AS series_id, se.series_date, se.modality, "
            "i.id AS image_id "
            "FROM images i JOIN series se ON se.id = i.series_id "
            "JOIN studies st ON st.id = se.study_id JOIN patients p ON p.id = st.patient_id "
            f"WHERE i.id IN ({marks})", chunk))
    rows.sort(key=lambda r: (r["patient_id"], r["study_id"], r["series_id"], r["image_id"]))
    return rows
