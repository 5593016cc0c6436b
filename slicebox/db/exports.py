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
