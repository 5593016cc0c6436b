"""Repository of this box's DICOM listeners (SCPs) and the remote ones it sends to (SCUs)."""
from __future__ import annotations

from slicebox.db import Connection
from slicebox.models import Scp, Scu

_SCP = "id, name, ae_title, port"
_SCU = "id, name, ae_title, host, port"


def _scp(row: dict | None) -> Scp | None:
    return None if row is None else Scp(id=row["id"], name=row["name"], ae_title=row["ae_title"],
                                        port=int(row["port"]))


def _scu(row: dict | None) -> Scu | None:
    return None if row is None else Scu(id=row["id"], name=row["name"], ae_title=row["ae_title"],
                                        host=row["host"], port=int(row["port"]))


# -- SCPs ----------------------------------------------------------------------------
def insert_scp(conn: Connection, name: str, ae_title: str, port: int) -> Scp:
    return _scp(conn.one(f"INSERT INTO scps (name, ae_title, port) VALUES (?, ?, ?) RETURNING {_SCP}",
                         (name, ae_title, port)))


def get_scp(conn: Connection, scp_id: int) -> Scp | None:
    return _scp(conn.one(f"SELECT {_SCP} FROM scps WHERE id = ?", (scp_id,)))


def get_scp_by_name(conn: Connection, name: str) -> Scp | None:
    return _scp(conn.one(f"SELECT {_SCP} FROM scps WHERE name = ?", (name,)))


def get_scp_by_port(conn: Connection, port: int) -> Scp | None:
    return _scp(conn.one(f"SELECT {_SCP} FROM scps WHERE port = ?", (port,)))


def list_scps(conn: Connection, start: int = 0, count: int = 1_000_000) -> list[Scp]:
    return [_scp(r) for r in conn.all(f"SELECT {_SCP} FROM scps ORDER BY id LIMIT ? OFFSET ?",
                                      (count, start))]


def delete_scp(conn: Connection, scp_id: int) -> None:
    conn.execute("DELETE FROM scps WHERE id = ?", (scp_id,))


# -- SCUs ----------------------------------------------------------------------------
def insert_scu(conn: Connection, name: str, ae_title: str, host: str, port: int) -> Scu:
    return _scu(conn.one(
        f"INSERT INTO scus (name, ae_title, host, port) VALUES (?, ?, ?, ?) RETURNING {_SCU}",
        (name, ae_title, host, port)))


def get_scu(conn: Connection, scu_id: int) -> Scu | None:
    return _scu(conn.one(f"SELECT {_SCU} FROM scus WHERE id = ?", (scu_id,)))


def get_scu_by_name(conn: Connection, name: str) -> Scu | None:
    return _scu(conn.one(f"SELECT {_SCU} FROM scus WHERE name = ?", (name,)))


def get_scu_by_address(conn: Connection, host: str, port: int) -> Scu | None:
    return _scu(conn.one(f"SELECT {_SCU} FROM scus WHERE host = ? AND port = ?", (host, port)))


def scus_by_ae_title(conn: Connection, ae_title: str) -> list[Scu]:
    return [_scu(r) for r in conn.all(f"SELECT {_SCU} FROM scus WHERE ae_title = ? ORDER BY id",
                                      (ae_title,))]


def list_scus(conn: Connection, start: int = 0, count: int = 1_000_000) -> list[Scu]:
    return [_scu(r) for r in conn.all(f"SELECT {_SCU} FROM scus ORDER BY id LIMIT ? OFFSET ?",
                                      (count, start))]


def delete_scu(conn: Connection, scu_id: int) -> None:
    conn.execute("DELETE FROM scus WHERE id = ?", (scu_id,))


def existing_image_ids(conn: Connection, image_ids: list[int]) -> set[int]:
    found: set[int] = set()
    ids = sorted({int(i) for i in image_ids})
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        found.update(r["id"] for r in conn.all(f"SELECT id FROM images WHERE id IN ({marks})", chunk))
    return found
