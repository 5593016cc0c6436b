"""Tag filters, their tag paths and the source <-> filter associations."""
from __future__ import annotations

from slicebox.db import Connection
from slicebox.models import Source, SourceTagFilter, TagFilter, TagFilterPath


def _path(row: dict) -> TagFilterPath:
    return TagFilterPath(id=row["id"], tag_filter_id=row["tag_filter_id"], tag_path=row["tag_path"])


def tag_paths(conn: Connection, filter_id: int) -> list[TagFilterPath]:
    return [_path(r) for r in conn.all(
        "SELECT id, tag_filter_id, tag_path FROM tag_filter_paths WHERE tag_filter_id = ? ORDER BY id",
        (filter_id,))]


def _filter(conn: Connection, row: dict) -> TagFilter:
    return TagFilter(id=row["id"], name=row["name"], filter_type=row["filter_type"],
                     tag_paths=tuple(tag_paths(conn, row["id"])))


def get_filter(conn: Connection, filter_id: int) -> TagFilter | None:
    row = conn.one("SELECT id, name, filter_type FROM tag_filters WHERE id = ?", (filter_id,))
    return None if row is None else _filter(conn, row)


def get_filter_by_name(conn: Connection, name: str) -> TagFilter | None:
    row = conn.one("SELECT id, name, filter_type FROM tag_filters WHERE name = ?", (name,))
    return None if row is None else _filter(conn, row)


def list_filters(conn: Connection, start: int, count: int) -> list[TagFilter]:
    rows = conn.all("SELECT id, name, filter_type FROM tag_filters ORDER BY id LIMIT ? OFFSET ?",
                    (count, start))
    return [_filter(conn, r) for r in rows]


def insert_filter(conn: Connection, name: str, filter_type: str) -> int:
    return conn.scalar("INSERT INTO tag_filters (name, filter_type) VALUES (?, ?) RETURNING id",
                       (name, filter_type))


def set_filter_type(conn: Connection, filter_id: int, filter_type: str) -> None:
    conn.execute("UPDATE tag_filters SET filter_type = ? WHERE id = ?", (filter_type, filter_id))


def delete_filter(conn: Connection, filter_id: int) -> None:
    conn.execute("DELETE FROM tag_filters WHERE id = ?", (filter_id,))


def delete_tag_paths(conn: Connection, filter_id: int) -> None:
    conn.execute("DELETE FROM tag_filter_paths WHERE tag_filter_id = ?", (filter_id,))


def add_tag_path(conn: Connection, filter_id: int, tag_path: str) -> TagFilterPath:
    row = conn.one(
        "INSERT INTO tag_filter_paths (tag_filter_id, tag_path) VALUES (?, ?) "
        "ON CONFLICT (tag_filter_id, tag_path) DO UPDATE SET tag_path = excluded.tag_path "
        "RETURNING id, tag_filter_id, tag_path", (filter_id, tag_path))
    return _path(row)


def delete_tag_path(conn: Connection, filter_id: int, tag_path_id: int) -> None:
    conn.execute("DELETE FROM tag_filter_paths WHERE id = ? AND tag_filter_id = ?", (tag_path_id, filter_id))


_ASSOC = ("SELECT a.id, a.source_type, a.source_name, a.source_id, a.tag_filter_id, f.name AS filter_name "
          "FROM source_tag_filters a JOIN tag_filters f ON f.id = a.tag_filter_id")


def _assoc(row: dict) -> SourceTagFilter:
    return SourceTagFilter(id=row["id"], source=Source(row["source_type"], row["source_name"], row["source_id"]),
                           tag_filter_id=row["tag_filter_id"], tag_filter_name=row["filter_name"])


def list_associations(conn: Connection, start: int, count: int) -> list[SourceTagFilter]:
    return [_assoc(r) for r in conn.all(f"{_ASSOC} ORDER BY a.id LIMIT ? OFFSET ?", (count, start))]


def upsert_association(conn: Connection, source: Source, filter_id: int) -> SourceTagFilter:
    assoc_id = conn.scalar(
        "INSERT INTO source_tag_filters (source_type, source_name, source_id, tag_filter_id) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (source_type, source_id) DO UPDATE SET "
        "source_name = excluded.source_name, tag_filter_id = excluded.tag_filter_id RETURNING id",
        (source.type, source.name, source.id, filter_id))
    return _assoc(conn.one(f"{_ASSOC} WHERE a.id = ?", (assoc_id,)))


def delete_association(conn: Connection, assoc_id: int) -> None:
    conn.execute("DELETE FROM source_tag_filters WHERE id = ?", (assoc_id,))


def delete_associations_of_source(conn: Connection, source_type: str, source_id: int) -> None:
    conn.execute("DELETE FROM source_tag_filters WHERE source_type = ? AND source_id = ?",
                 (source_type, source_id))


def filter_of_source(conn: Connection, source_type: str, source_id: int) -> tuple[str, list[str]] | None:
    """(filter type, tag paths) of the filter associated with a source, or None."""
    rows = conn.all(
        "SELECT f.filter_type, p.tag_path FROM source_tag_filters a "
        "JOIN tag_filters f ON f.id = a.tag_filter_id "
        "LEFT JOIN tag_filter_paths p ON p.tag_filter_id = f.id "
        "WHERE a.source_type = ? AND a.source_id = ? ORDER BY p.id", (source_type, source_id))
    if not rows:
        return None
    return rows[0]["filter_type"], [r["tag_path"] for r in rows if r["tag_path"] is not None]


def source_name(conn: Connection, source_type: str, source_id: int) -> str | None:
    """The name of an existing source (user, box, scp, directory watch, import session), or None."""
    table, column = _SOURCE_TABLES[source_type]
    row = conn.one(f"SELECT {column} AS name FROM {table} WHERE id = ?", (source_id,))
    return None if row is None else row["name"]


#: source type -> (table, name column); the table names are constants, never input
_SOURCE_TABLES = {
    "user": ("users", "username"),
    "box": ("boxes", "name"),
    "scp": ("scps", "name"),
    "directory": ("directory_watches", "name"),
    "import": ("import_sessions", "name"),
}
SOURCE_TYPES_WITH_TABLES = tuple(_SOURCE_TABLES)
#: source type -> table, for other repositories' orphan checks
SOURCE_TABLES = {kind: table for kind, (table, _) in _SOURCE_TABLES.items()}


def delete_orphaned_associations(conn: Connection) -> int:
    """Delete associations whose source no longer exists; returns how many."""
    removed = 0
    for source_type, (table, _) in _SOURCE_TABLES.items():
        removed += conn.execute(
            f"DELETE FROM source_tag_filters WHERE source_type = ? AND NOT EXISTS "
            f"(SELECT 1 FROM {table} s WHERE s.id = source_tag_filters.source_id)", (source_type,)).rowcount
    return removed
