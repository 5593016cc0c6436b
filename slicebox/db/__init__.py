"""Database access for SQLite (embedded default) and PostgreSQL (psycopg 3).

``Database(url)`` hands out connections wrapped in :class:`Connection`, whose
``execute`` takes ``?`` placeholders and returns rows as dicts on both
back-ends.  ``db.transaction()`` is one atomic unit of work; ``db.connection()``
is for reads (autocommit).  Repositories are plain functions taking a
Connection.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import sqlite3
import threading
from typing import Any, Iterator
from urllib.parse import urlparse

from slicebox.db.dialect import Dialect, PostgresDialect, SQLiteDialect
from slicebox.errors import BadRequest

logger = logging.getLogger(__name__)


class IntegrityError(Exception):
    """A constraint was violated (unique, foreign key)."""


#: The range of a 64-bit signed integer (SQLite INTEGER, PostgreSQL BIGINT).
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def check_params(params: tuple) -> None:
    """Refuse values neither database can hold, whatever their way in (BadRequest, 400).

    Integers outside 64 bits, text holding NUL (PostgreSQL cannot store it,
    SQLite would cut it at C boundaries) and text that is not Unicode scalar
    values (lone surrogates from JSON ``\\ud800``; neither driver can encode
    it).  One check for every statement on both back-ends, so no route needs
    its own.
    """
    for value in params:
        kind = type(value)
        if kind is str:
            if "\x00" in value:
                raise BadRequest("text must not contain NUL characters")
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise BadRequest("text must be valid Unicode (no lone surrogates)") from None
        elif kind is int:
            if value < INT64_MIN or value > INT64_MAX:
                raise BadRequest("integer out of range (must fit in 64 bits)")


#: SQLite refusals caused by the size of what a request asked for, not by a bug.
_SQLITE_LIMITS = ("too many sql variables", "pattern too complex", "expression tree is too large",
                  "string or blob too big", "too many terms")


class Connection:
    """A thin wrapper giving both drivers the same small surface."""

    def __init__(self, raw, dialect: Dialect):
        self.raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: tuple | list = ()) -> "Cursor":
        try:
            if params:
                params = tuple(params)
                check_params(params)
                cur = self.raw.execute(self.dialect.sql(sql), params)
            else:
                cur = self.raw.execute(sql)
        except (sqlite3.IntegrityError,) as exc:
            raise IntegrityError(str(exc)) from exc
        except (sqlite3.OperationalError, sqlite3.DataError, OverflowError) as exc:
            if isinstance(exc, sqlite3.OperationalError) and not any(
                    m in str(exc).lower() for m in _SQLITE_LIMITS):
                raise
            raise BadRequest("the request is too large or holds a value the database cannot store") from exc
        except Exception as exc:
            if _is_pg_integrity(exc):
                raise IntegrityError(str(exc)) from exc
            if _is_pg_bad_value(exc):
                raise BadRequest("the request is too large or holds a value the database cannot store") from exc
            raise
        return Cursor(cur)

    def one(self, sql: str, params: tuple | list = ()) -> dict | None:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: tuple | list = ()) -> list[dict]:
        return self.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: tuple | list = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else next(iter(row.values()))


def _is_pg_integrity(exc: Exception) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, psycopg.errors.IntegrityError)


def _is_pg_bad_value(exc: Exception) -> bool:
    """A PostgreSQL data exception (SQLSTATE class 22: out of range, invalid text, ...) or a
    program limit (class 54: statement too complex, index row too large): the values' fault."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    if not isinstance(exc, psycopg.Error):
        return False
    state = getattr(exc, "sqlstate", None) or ""
    return state[:2] in ("22", "54") or (isinstance(exc, psycopg.DataError) and not state)


class Cursor:
    def __init__(self, cur):
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self) -> dict | None:
        row = self._cur.fetchone()
        return None if row is None else dict(row)

    def fetchall(self) -> list[dict]:
        return [dict(r) for r in self._cur.fetchall()]

    def __iter__(self):
        for row in self._cur:
            yield dict(row)


class Database:
    """Connections and transactions for one database URL."""

    def __init__(self, url: str, pool_size: int = 10):
        self.url = url
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            self.dialect: Dialect = SQLiteDialect()
            path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parsed.path
            self._sqlite_path = path or ":memory:"
            if self._sqlite_path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(self._sqlite_path)), exist_ok=True)
            self._local = threading.local()
            self._all_sqlite: list[sqlite3.Connection] = []
            self._lock = threading.Lock()
            self._pool = None
            self.schema = ""
        elif parsed.scheme in ("postgresql", "postgres"):
            from psycopg.rows import dict_row
            from psycopg_pool import ConnectionPool

            self.dialect = PostgresDialect()
            schema = _query_param(url, "schema")
            conninfo = _strip_query_param(url, "schema")
            self.schema = schema or ""
            self._conninfo = conninfo

            def configure(conn):
                conn.autocommit = True
                if schema:
                    conn.execute(f'SET search_path TO "{schema}"')

            self._pool = ConnectionPool(
                conninfo,
                min_size=1,
                max_size=pool_size,
                kwargs={"row_factory": dict_row},
                configure=configure,
                open=True,
                timeout=30,
            )
        else:
            raise ValueError(f"unsupported database URL scheme: {parsed.scheme!r}")

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.name == "sqlite"

    # -- SQLite ---------------------------------------------------------------
    def _sqlite_conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._sqlite_path, timeout=60, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=60000")
            # SQLite's LOWER folds ASCII only; PostgreSQL's folds all letters.  Use
            # Python's so case-insensitive filters (LOWER(col) LIKE ?) agree.
            conn.create_function("LOWER", 1, _sqlite_lower, deterministic=True)
            self._local.conn = conn
            with self._lock:
                self._all_sqlite.append(conn)
        return conn

    # -- public ---------------------------------------------------------------
    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection in autocommit mode, for reads and single statements."""
        if self._pool is None:
            yield Connection(self._sqlite_conn(), self.dialect)
        else:
            with self._pool.connection() as raw:
                yield Connection(raw, self.dialect)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One atomic unit of work: committed on success, rolled back on error."""
        if self._pool is None:
            raw = self._sqlite_conn()
            if raw.in_transaction:  # nested use: join the outer transaction
                yield Connection(raw, self.dialect)
                return
            # IMMEDIATE takes the write lock up front, so two writers never
            # deadlock upgrading read locks.
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield Connection(raw, self.dialect)
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            else:
                raw.execute("COMMIT")
        else:
            with self._pool.connection() as raw:
                with raw.transaction():
                    yield Connection(raw, self.dialect)

    def ping(self, timeout: float = 5.0) -> None:
        """Raise unless the database answers ``SELECT 1`` within about ``timeout`` seconds."""
        if self._pool is None:
            self._sqlite_conn().execute("SELECT 1").fetchone()
            return
        with self._pool.connection(timeout=timeout) as raw:
            raw.execute("SELECT 1").fetchone()

    # -- named locks ------------------------------------------------------------
    def transaction_lock(self, conn: Connection, name: str) -> None:
        """Hold the lock ``name`` until the transaction ``conn`` belongs to ends.

        PostgreSQL: a transaction-scoped advisory lock keyed by name and schema,
        so boxes in different schemas of one database never wait for each other.
        SQLite: nothing to do, ``transaction()`` already holds the write lock.
        """
        if self._pool is not None:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(self.schema, name),))

    def try_session_lock(self, name: str) -> "SessionLock | None":
        """Take the lock ``name`` for as long as this process keeps it, or None if another holds it.

        PostgreSQL: a session advisory lock (keyed by name and schema) on a
        connection of its own, made from the full database URL.  SQLite: an
        exclusive file lock next to the database file.  Either is released
        when the holder calls :meth:`SessionLock.release` or its process dies.
        """
        if self._pool is None:
            return _FileLock.try_take(self._lock_file(name))
        return _PgSessionLock.try_take(self._conninfo, lock_key(self.schema, name))

    def _lock_file(self, name: str) -> str:
        if self._sqlite_path == ":memory:":  # one process, one database: a lock per Database
            return ""
        return f"{os.path.abspath(self._sqlite_path)}.{name}.lock"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        else:
            with self._lock:
                for conn in self._all_sqlite:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001 - closing from another thread
                        pass
                self._all_sqlite.clear()
            self._local = threading.local()


def lock_key(schema: str, name: str) -> int:
    """The PostgreSQL advisory lock key (signed 64 bits) of lock ``name`` in ``schema``."""
    digest = hashlib.sha256(f"slicebox\0{schema}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SessionLock:
    """A held named lock; :meth:`held` tells whether it still is."""

    def held(self) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


class _FileLock(SessionLock):
    def __init__(self, fh):
        self._fh = fh

    @classmethod
    def try_take(cls, path: str) -> "_FileLock | None":
        if not path:
            raise ValueError("session locks need a database file")
        fh = open(path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return None
        return cls(fh)

    def held(self) -> bool:
        return self._fh is not None

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _PgSessionLock(SessionLock):
    def __init__(self, conn):
        self._conn = conn

    @classmethod
    def try_take(cls, conninfo: str, key: int) -> "_PgSessionLock | None":
        import psycopg

        conn = psycopg.connect(conninfo, autocommit=True)
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return None
        return cls(conn)

    def held(self) -> bool:
        """False once the lock's connection is gone (then the server has released the lock)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - connection lost
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _sqlite_lower(value):
    return value.lower() if isinstance(value, str) else value


def _query_param(url: str, name: str) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(urlparse(url).query).get(name)
    return values[0] if values else None


def _strip_query_param(url: str, name: str) -> str:
    from urllib.parse import parse_qsl, urlencode, urlunparse

    parsed = urlparse(url)
    query = [(k, v) for k, v in parse_qsl(parsed.query) if k != name]
    return urlunparse(parsed._replace(query=urlencode(query)))
