"""PostgreSQL for the tests: the server's URL, throw-away schemas, skip-or-fail when it is missing.

A module of its own (not conftest.py) so test modules in any folder can import it:
``from conftest import ...`` picks whichever conftest was imported first.
"""
from __future__ import annotations

import os
import uuid

import pytest

PG_URL = os.environ.get("SLICEBOX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_pg_state: dict = {}


def postgres_available() -> tuple[bool, str]:
    if "ok" not in _pg_state:
        try:
            import psycopg

            with psycopg.connect(PG_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_state["ok"], _pg_state["why"] = True, ""
        except Exception as exc:  # noqa: BLE001
            _pg_state["ok"], _pg_state["why"] = False, f"PostgreSQL not reachable at {PG_URL}: {exc}"
    return _pg_state["ok"], _pg_state["why"]


def require_postgres() -> None:
    ok, why = postgres_available()
    if not ok:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)


class PgSchema:
    """A throw-away PostgreSQL schema; ``url`` points connections at it."""

    def __init__(self):
        import psycopg

        self.name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')
        sep = "&" if "?" in PG_URL else "?"
        self.url = f"{PG_URL}{sep}schema={self.name}"

    def drop(self):
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


