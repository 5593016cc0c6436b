"""Repository of the box's event log."""
from __future__ import annotations

from slicebox.db import Connection
from slicebox.models import LogEntry

_COLUMNS = "id, created, entry_type, subject, message"


def _entry(row: dict) -> LogEntry:
    return LogEntry(**row)


def insert(conn: Connection, created: int, entry_type: str, subject: str, message: str) -> LogEntry:
    row = conn.one(
        f"INSERT INTO log (created, entry_type, subject, message) VALUES (?, ?, ?, ?) RETURNING {_COLUMNS}",
        (created, entry_type, subject, message),
    )
    return _entry(row)


def list_entries(conn: Connection, start: int, count: int, subject: str | None,
                 entry_type: str | None) -> list[LogEntry]:
    where, params = [], []
    if subject:
        where.append("subject = ?")
        params.append(subject)
    if entry_type:
        where.append("entry_type = ?")
        params.append(entry_type)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = conn.all(
        f"SELECT {_COLUMNS} FROM log {clause}ORDER BY created DESC, id DESC LIMIT ? OFFSET ?",
        params + [count, start],
    )
    return [_entry(r) for r in rows]


def delete(conn: Connection, entry_id: int) -> None:
    conn.execute("DELETE FROM log WHERE id = ?", (entry_id,))


def clear(conn: Connection) -> None:
    conn.execute("DELETE FROM log")
