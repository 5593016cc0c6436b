"""Numbered SQL migrations applied in order at start-up.

Files ``db/migrations/NNNN_name.sql`` run once each, inside one transaction
per file, recorded in ``schema_migrations``.  Concurrent starters (several
gunicorn workers, several hosts) serialize on a lock: PostgreSQL advisory lock
or SQLite's write lock, so each migration runs exactly once.
"""
from __future__ import annotations

import logging
import os
import re

from slicebox.clock import now_ms
from slicebox.db import Database

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")
MIGRATION_LOCK = "migrations"


def migrations() -> list[tuple[int, str, str]]:
    found = []
    for name in sorted(os.listdir(MIGRATIONS_DIR)):
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", name)
        if match:
            with open(os.path.join(MIGRATIONS_DIR, name), encoding="utf-8") as fh:
                found.append((int(match.group(1)), match.group(2), fh.read()))
    return found


def _statements(script: str) -> list[str]:
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def migrate(db: Database) -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    applied_now = []
    with db.transaction() as conn:
        db.transaction_lock(conn, MIGRATION_LOCK)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied BIGINT NOT NULL)"
        )
        done = {r["version"] for r in conn.all("SELECT version FROM schema_migrations")}
        for version, name, script in migrations():
            if version in done:
                continue
            for statement in _statements(db.dialect.render_ddl(script)):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
                (version, name, now_ms()),
            )
            applied_now.append(version)
            logger.info("applied migration %04d_%s", version, name)
    return applied_now
