"""Repository of users and login sessions."""
from __future__ import annotations

from slicebox.db import Connection
from slicebox.models import User


def _user(row: dict | None) -> User | None:
    return None if row is None else User(id=row["id"], user=row["username"], role=row["role"])


def get_user_with_hash(conn: Connection, username: str) -> dict | None:
    return conn.one("SELECT id, username, role, password_hash FROM users WHERE username = ?", (username,))


def get_user(conn: Connection, user_id: int) -> User | None:
    return _user(conn.one("SELECT id, username, role FROM users WHERE id = ?", (user_id,)))


def get_user_by_name(conn: Connection, username: str) -> User | None:
    return _user(conn.one("SELECT id, username, role FROM users WHERE username = ?", (username,)))


def list_users(conn: Connection, start: int, count: int) -> list[User]:
    rows = conn.all("SELECT id, username, role FROM users ORDER BY id LIMIT ? OFFSET ?", (count, start))
    return [_user(r) for r in rows]


def insert_user(conn: Connection, username: str, role: str, password_hash: str) -> User:
    row = conn.one(
        "INSERT INTO users (username, role, password_hash) VALUES (?, ?, ?) RETURNING id, username, role",
        (username, role, password_hash),
    )
    return _user(row)


def update_user(conn: Connection, user_id: int, role: str, password_hash: str) -> None:
    conn.execute("UPDATE users SET role = ?, password_hash = ? WHERE id = ?", (role, password_hash, user_id))


def delete_user(conn: Connection, user_id: int) -> None:
    conn.execute("DELETE FROM users WHERE id = ?", (user_id,))


def superusers(conn: Connection) -> list[dict]:
    return conn.all("SELECT id, username, role, password_hash FROM users WHERE role = 'SUPERUSER'")


# -- sessions -------------------------------------------------------------------
def find_session(conn: Connection, user_id: int, ip: str, agent: str) -> dict | None:
    return conn.one(
        "SELECT id, token, updated FROM sessions WHERE user_id = ? AND ip = ? AND user_agent = ?",
        (user_id, ip, agent),
    )


def insert_session(conn: Connection, user_id: int, token: str, ip: str, agent: str, now: int) -> None:
    conn.execute(
        "INSERT INTO sessions (user_id, token, ip, user_agent, updated) VALUES (?, ?, ?, ?, ?)",
        (user_id, token, ip, agent, now),
    )


def session_user(conn: Connection, token: str, ip: str, agent: str) -> dict | None:
    return conn.one(
        "SELECT s.id AS session_id, s.updated, u.id, u.username, u.role FROM sessions s "
        "JOIN users u ON u.id = s.user_id WHERE s.token = ? AND s.ip = ? AND s.user_agent = ?",
        (token, ip, agent),
    )


def touch_session(conn: Connection, session_id: int, now: int) -> None:
    conn.execute("UPDATE sessions SET updated = ? WHERE id = ?", (now, session_id))


def delete_session(conn: Connection, session_id: int) -> None:
    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


def delete_session_of(conn: Connection, token: str, user_id: int) -> None:
    conn.execute("DELETE FROM sessions WHERE token = ? AND user_id = ?", (token, user_id))


def purge_sessions(conn: Connection, older_than: int) -> int:
    return conn.execute("DELETE FROM sessions WHERE updated < ?", (older_than,)).rowcount
