"""Queries spanning areas: the sources and destinations a box knows."""
from __future__ import annotations

from slicebox.db import Connection
from slicebox.models import Destination, Source

_SOURCE_QUERIES = (
    ("user", "SELECT id, username AS name FROM users ORDER BY id"),
    ("box", "SELECT id, name FROM boxes ORDER BY id"),
    ("directory", "SELECT id, name FROM directory_watches ORDER BY id"),
    ("scp", "SELECT id, name FROM scps ORDER BY id"),
    ("import", "SELECT id, name FROM import_sessions ORDER BY id"),
)

_DESTINATION_QUERIES = (
    ("box", "SELECT id, name FROM boxes ORDER BY id"),
    ("scu", "SELECT id, name FROM scus ORDER BY id"),
)


def sources(conn: Connection) -> list[Source]:
    return [Source(kind, r["name"], r["id"]) for kind, sql in _SOURCE_QUERIES for r in conn.all(sql)]


def destinations(conn: Connection) -> list[Destination]:
    return [Destination(kind, r["name"], r["id"]) for kind, sql in _DESTINATION_QUERIES for r in conn.all(sql)]
