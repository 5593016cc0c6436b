"""Repository of import sessions, their counters and their images."""
from __future__ import annotations

from slicebox.db import Connection
from slicebox.db.rows import IMAGE_COLUMNS, row_to_image
from slicebox.models import Image, ImportSession

_SESSION = ("id, name, user_id, username, files_imported, files_added, files_rejected, created, "
            "last_updated")


def _session(row: dict | None) -> ImportSession | None:
    if row is None:
        return None
    values = dict(row)
    values["user"] = values.pop("username")
    return ImportSession(**values)


def insert_session(conn: Connection, name: str, user_id: int, username: str, now: int) -> ImportSession:
    row = conn.one(
        "INSERT INTO import_sessions (name, user_id, username, files_imported, files_added, "
        f"files_rejected, created, last_updated) VALUES (?, ?, ?, 0, 0, 0, ?, ?) RETURNING {_SESSION}",
        (name, user_id, username, now, now),
    )
    return _session(row)


def get_session(conn: Connection, session_id: int) -> ImportSession | None:
    return _session(conn.one(f"SELECT {_SESSION} FROM import_sessions WHERE id = ?", (session_id,)))


def get_session_by_name(conn: Connection, name: str) -> ImportSession | None:
    return _session(conn.one(f"SELECT {_SESSION} FROM import_sessions WHERE name = ?", (name,)))


def list_sessions(conn: Connection, start: int, count: int) -> list[ImportSession]:
    rows = conn.all(f"SELECT {_SESSION} FROM import_sessions ORDER BY id LIMIT ? OFFSET ?", (count, start))
    return [_session(r) for r in rows]


def delete_session(conn: Connection, session_id: int) -> None:
    conn.execute("DELETE FROM import_sessions WHERE id = ?", (session_id,))


def count_stored(conn: Connection, session_id: int, image_id: int, added: bool, now: int) -> bool:
    """+1 imported (and +1 added when new) in one statement; False when the session is gone."""
    cur = conn.execute(
        "UPDATE import_sessions SET files_imported = files_imported + 1, "
        "files_added = files_added + ?, last_updated = ? WHERE id = ?",
        (1 if added else 0, now, session_id),
    )
    if cur.rowcount == 0:
        return False
    conn.execute("INSERT INTO import_session_images (import_session_id, image_id) VALUES (?, ?) "
                 "ON CONFLICT DO NOTHING", (session_id, image_id))
    return True


def count_rejected(conn: Connection, session_id: int, now: int) -> None:
    conn.execute("UPDATE import_sessions SET files_rejected = files_rejected + 1, last_updated = ? "
                 "WHERE id = ?", (now, session_id))


def session_images(conn: Connection, session_id: int) -> list[Image]:
    columns = ", ".join(f"i.{c}" for c in IMAGE_COLUMNS)
    rows = conn.all(f"SELECT {columns} FROM import_session_images s JOIN images i ON i.id = s.image_id "
                    "WHERE s.import_session_id = ? ORDER BY i.id", (session_id,))
    return [row_to_image(r) for r in rows]
