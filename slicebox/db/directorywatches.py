"""Repository of directory watches and the ledger of files they imported."""
from __future__ import annotations

from slicebox.db import Connection
from slicebox.models import DirectoryWatch

_WATCH = "id, name, path"


def _watch(row: dict | None) -> DirectoryWatch | None:
    return None if row is None else DirectoryWatch(**row)


def insert_watch(conn: Connection, name: str, path: str) -> DirectoryWatch:
    row = conn.one(f"INSERT INTO directory_watches (name, path) VALUES (?, ?) RETURNING {_WATCH}",
                   (name, path))
    return _watch(row)


def get_watch(conn: Connection, watch_id: int) -> DirectoryWatch | None:
    return _watch(conn.one(f"SELECT {_WATCH} FROM directory_watches WHERE id = ?", (watch_id,)))


def list_watches(conn: Connection, start: int = 0, count: int = 1_000_000) -> list[DirectoryWatch]:
    rows = conn.all(f"SELECT {_WATCH} FROM directory_watches ORDER BY id LIMIT ? OFFSET ?", (count, start))
    return [DirectoryWatch(**r) for r in rows]


def delete_watch(conn: Connection, watch_id: int) -> None:
    conn.execute("DELETE FROM directory_watches WHERE id = ?", (watch_id,))


# -- the ledger ---------------------------------------------------------------------
def ledger_under(conn: Connection, root: str) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file below ``root`` the ledger knows.

    A prefix test, not a key range: PostgreSQL's collations need not order
    '/' before '0' (read once when a watcher starts, so a scan is fine).
    """
    prefix = root.rstrip("/") + "/"
    rows = conn.all("SELECT path, size, mtime_ns FROM directory_watch_files "
                    "WHERE substr(path, 1, ?) = ?", (len(prefix), prefix))
    return {r["path"]: (r["size"], r["mtime_ns"]) for r in rows}


def ledger_entry(conn: Connection, path: str) -> dict | None:
    return conn.one("SELECT path, size, mtime_ns, status, image_id, imports, updated "
                    "FROM directory_watch_files WHERE path = ?", (path,))


def record_file(conn: Connection, path: str, size: int, mtime_ns: int, status: str,
                image_id: int | None, now: int) -> None:
    """Remember this version of the file (``imports`` counts how often a path was ingested)."""
    ingested = 1 if image_id is not None else 0
    conn.execute(
        "INSERT INTO directory_watch_files (path, size, mtime_ns, status, image_id, imports, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
        "mtime_ns = excluded.mtime_ns, status = excluded.status, image_id = excluded.image_id, "
        "imports = directory_watch_files.imports + excluded.imports, updated = excluded.updated",
        (path, size, mtime_ns, status, image_id, ingested, now),
    )
