"""Repository of boxes and their outgoing / incoming transactions."""
from __future__ import annotations

import json

from slicebox.db import Connection
from slicebox.models import Box, IncomingTransaction, OutgoingImage, OutgoingTransaction

_BOX = "id, name, token, base_url, send_method, profile, last_seen"
_OUT = ("id, box_id, box_name, profile, sent_image_count, total_image_count, created, updated, status")
_OUT_IMG = "id, outgoing_transaction_id, image_id, sequence_number, sent"
_IN = ("id, box_id, box_name, outgoing_transaction_id, received_image_count, added_image_count, "
       "total_image_count, created, updated, status")


def _profile(text: str) -> tuple[str, ...]:
    return tuple(n for n in text.split(",") if n)


def row_to_box(row: dict, online_since: int) -> Box:
    return Box(id=row["id"], name=row["name"], token=row["token"], base_url=row["base_url"],
               send_method=row["send_method"], profile=_profile(row["profile"]),
               online=row["last_seen"] >= online_since)


def row_to_outgoing(row: dict) -> OutgoingTransaction:
    return OutgoingTransaction(**{**row, "profile": _profile(row["profile"])})


def row_to_outgoing_image(row: dict) -> OutgoingImage:
    return OutgoingImage(**{**row, "sent": bool(row["sent"])})


def row_to_incoming(row: dict) -> IncomingTransaction:
    return IncomingTransaction(**row)


# -- boxes ------------------------------------------------------------------------
def insert_box(conn: Connection, name: str, token: str, base_url: str, send_method: str,
               profile: tuple[str, ...]) -> int:
    return conn.scalar(
        "INSERT INTO boxes (name, token, base_url, send_method, profile, last_seen) "
        "VALUES (?, ?, ?, ?, ?, 0) RETURNING id",
        (name, token, base_url, send_method, ",".join(profile)),
    )


def get_box_row(conn: Connection, box_id: int) -> dict | None:
    return conn.one(f"SELECT {_BOX} FROM boxes WHERE id = ?", (box_id,))


def get_box_row_by_name(conn: Connection, name: str) -> dict | None:
    return conn.one(f"SELECT {_BOX} FROM boxes WHERE name = ?", (name,))


def get_box_row_by_token(conn: Connection, token: str) -> dict | None:
    return conn.one(f"SELECT {_BOX} FROM boxes WHERE token = ?", (token,))


def list_box_rows(conn: Connection, start: int = 0, count: int = 1_000_000,
                  send_method: str | None = None) -> list[dict]:
    if send_method:
        return conn.all(f"SELECT {_BOX} FROM boxes WHERE send_method = ? ORDER BY id LIMIT ? OFFSET ?",
                        (send_method, count, start))
    return conn.all(f"SELECT {_BOX} FROM boxes ORDER BY id LIMIT ? OFFSET ?", (count, start))


def delete_box(conn: Connection, box_id: int) -> None:
    conn.execute("DELETE FROM boxes WHERE id = ?", (box_id,))


def touch_box(conn: Connection, box_id: int, now: int) -> None:
    conn.execute("UPDATE boxes SET last_seen = ? WHERE id = ?", (now, box_id))


def mark_box_offline(conn: Connection, box_id: int) -> None:
    conn.execute("UPDATE boxes SET last_seen = 0 WHERE id = ?", (box_id,))


# -- outgoing ---------------------------------------------------------------------
def insert_outgoing(conn: Connection, box_id: int, box_name: str, profile: tuple[str, ...],
                    total: int, now: int) -> int:
    return conn.scalar(
        "INSERT INTO outgoing_transactions (box_id, box_name, profile, sent_image_count, "
        "total_image_count, created, updated, status) VALUES (?, ?, ?, 0, ?, ?, ?, 'WAITING') RETURNING id",
        (box_id, box_name, ",".join(profile), total, now, now),
    )


def insert_outgoing_image(conn: Connection, transaction_id: int, image_id: int, seq: int) -> int:
    return conn.scalar(
        "INSERT INTO outgoing_images (outgoing_transaction_id, image_id, sequence_number, sent) "
        "VALUES (?, ?, ?, 0) RETURNING id",
        (transaction_id, image_id, seq),
    )


def insert_outgoing_tag_value(conn: Connection, outgoing_image_id: int, tag_path: str, value: str) -> None:
    conn.execute("INSERT INTO outgoing_tag_values (outgoing_image_id, tag_path, value) VALUES (?, ?, ?)",
                 (outgoing_image_id, tag_path, value))


def outgoing_tag_values(conn: Connection, outgoing_image_id: int) -> list[tuple[dict, str]]:
    rows = conn.all("SELECT tag_path, value FROM outgoing_tag_values WHERE outgoing_image_id = ? ORDER BY id",
                    (outgoing_image_id,))
    return [(json.loads(r["tag_path"]), r["value"]) for r in rows]


def get_outgoing(conn: Connection, transaction_id: int) -> OutgoingTransaction | None:
    row = conn.one(f"SELECT {_OUT} FROM outgoing_transactions WHERE id = ?", (transaction_id,))
    return None if row is None else row_to_outgoing(row)


def list_outgoing(conn: Connection, start: int, count: int) -> list[OutgoingTransaction]:
    rows = conn.all(f"SELECT {_OUT} FROM outgoing_transactions ORDER BY updated DESC, id DESC LIMIT ? OFFSET ?",
                    (count, start))
    return [row_to_outgoing(r) for r in rows]


def delete_outgoing(conn: Connection, transaction_id: int) -> None:
    conn.execute("DELETE FROM outgoing_transactions WHERE id = ?", (transaction_id,))


def get_outgoing_image(conn: Connection, transaction_id: int, outgoing_image_id: int) -> OutgoingImage | None:
    row = conn.one(f"SELECT {_OUT_IMG} FROM outgoing_images WHERE id = ? AND outgoing_transaction_id = ?",
                   (outgoing_image_id, transaction_id))
    return None if row is None else row_to_outgoing_image(row)


def pending_outgoing(conn: Connection, box_id: int, limit: int) -> list[tuple[OutgoingTransaction, OutgoingImage]]:
    """Unsent images of this box's transactions that are not FAILED, oldest transaction first, in sequence.

    As Slicebox 2.0 (``BoxDAO.nextOutgoingTransactionImagesForBoxId``): any
    status but FAILED is offered, so an unsent image is never stranded by a
    status set elsewhere.
    """
    rows = conn.all(
        "SELECT t.id AS t_id, t.box_id, t.box_name, t.profile, t.sent_image_count, t.total_image_count, "
        "t.created, t.updated, t.status, i.id AS i_id, i.image_id, i.sequence_number, i.sent "
        "FROM outgoing_images i JOIN outgoing_transactions t ON t.id = i.outgoing_transaction_id "
        "WHERE t.box_id = ? AND t.status <> 'FAILED' AND i.sent = 0 "
        "ORDER BY t.created, t.id, i.sequence_number LIMIT ?",
        (box_id, limit),
    )
    result = []
    for r in rows:
        tx = OutgoingTransaction(id=r["t_id"], box_id=r["box_id"], box_name=r["box_name"],
                                 profile=_profile(r["profile"]), sent_image_count=r["sent_image_count"],
                                 total_image_count=r["total_image_count"], created=r["created"],
                                 updated=r["updated"], status=r["status"])
        img = OutgoingImage(id=r["i_id"], outgoing_transaction_id=r["t_id"], image_id=r["image_id"],
                            sequence_number=r["sequence_number"], sent=bool(r["sent"]))
        result.append((tx, img))
    return result


def mark_outgoing_image_sent(conn: Connection, transaction_id: int, outgoing_image_id: int,
                             now: int, skipped: bool = False) -> tuple[OutgoingTransaction | None, bool]:
    """Mark one image sent and recount the transaction (inside a transaction).

    ``sent`` is 1 when the peer has the image, 2 when it was skipped (the peer
    refused it or it could not be prepared): both count as done, but only 1
    lets forwarding with keepImages=false delete the image.

    Returns the transaction (None if deleted meanwhile) and whether this call
    moved it to FINISHED.  The transaction row is locked first, so concurrent
    calls for images of one transaction count one after the other (on
    PostgreSQL two could otherwise each miss the other's image and leave the
    transaction short of FINISHED for ever).
    """
    before = conn.scalar("UPDATE outgoing_transactions SET updated = ? WHERE id = ? RETURNING status",
                         (now, transaction_id))
    if before is None:
        return None, False
    conn.execute("UPDATE outgoing_images SET sent = ? WHERE id = ? AND outgoing_transaction_id = ?",
                 (2 if skipped else 1, outgoing_image_id, transaction_id))
    sent = conn.scalar("SELECT COUNT(*) FROM outgoing_images WHERE outgoing_transaction_id = ? AND sent <> 0",
                       (transaction_id,))
    conn.execute(
        "UPDATE outgoing_transactions SET sent_image_count = ?, "
        "status = CASE WHEN status = 'FAILED' THEN 'FAILED' "
        "WHEN ? >= total_image_count THEN 'FINISHED' ELSE 'PROCESSING' END WHERE id = ?",
        (sent, sent, transaction_id),
    )
    tx = get_outgoing(conn, transaction_id)
    return tx, tx is not None and tx.status == "FINISHED" and before != "FINISHED"


def unreported_finished(conn: Connection, box_id: int, limit: int = 100) -> list[int]:
    """Ids of this box's FINISHED transactions the peer has not yet been told about."""
    return [r["id"] for r in conn.all(
        "SELECT id FROM outgoing_transactions WHERE box_id = ? AND status = 'FINISHED' AND finish_reported = 0 "
        "ORDER BY id LIMIT ?", (box_id, limit))]


def mark_finish_reported(conn: Connection, transaction_id: int) -> None:
    conn.execute("UPDATE outgoing_transactions SET finish_reported = 1 WHERE id = ?", (transaction_id,))


def set_outgoing_status(conn: Connection, transaction_id: int, status: str, now: int) -> None:
    conn.execute("UPDATE outgoing_transactions SET status = ?, updated = ? WHERE id = ?",
                 (status, now, transaction_id))


def outgoing_image_ids(conn: Connection, transaction_id: int) -> list[int]:
    return [r["image_id"] for r in conn.all(
        "SELECT image_id FROM outgoing_images WHERE outgoing_transaction_id = ? ORDER BY sequence_number",
        (transaction_id,))]


# -- incoming ---------------------------------------------------------------------
def get_incoming(conn: Connection, transaction_id: int) -> IncomingTransaction | None:
    row = conn.one(f"SELECT {_IN} FROM incoming_transactions WHERE id = ?", (transaction_id,))
    return None if row is None else row_to_incoming(row)


def get_incoming_by_remote(conn: Connection, box_id: int, remote_id: int) -> IncomingTransaction | None:
    row = conn.one(f"SELECT {_IN} FROM incoming_transactions WHERE box_id = ? AND outgoing_transaction_id = ?",
                   (box_id, remote_id))
    return None if row is None else row_to_incoming(row)


def upsert_incoming(conn: Connection, box_id: int, box_name: str, remote_id: int, total: int,
                    now: int) -> IncomingTransaction:
    conn.execute(
        "INSERT INTO incoming_transactions (box_id, box_name, outgoing_transaction_id, received_image_count, "
        "added_image_count, total_image_count, created, updated, status) VALUES (?, ?, ?, 0, 0, ?, ?, ?, "
        "'PROCESSING') ON CONFLICT (box_id, outgoing_transaction_id) DO NOTHING",
        (box_id, box_name, remote_id, total, now, now),
    )
    return get_incoming_by_remote(conn, box_id, remote_id)


def record_incoming_image(conn: Connection, incoming_id: int, seq: int, image_id: int | None,
                          added: bool, now: int) -> IncomingTransaction:
    """Count one received image once (a resent sequence number is not counted again)."""
    inserted = conn.execute(
        "INSERT INTO incoming_images (incoming_transaction_id, image_id, sequence_number, overwrite) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (incoming_transaction_id, sequence_number) DO NOTHING",
        (incoming_id, image_id, seq, 0 if added else 1),
    ).rowcount
    if inserted:
        conn.execute(
            "UPDATE incoming_transactions SET received_image_count = received_image_count + 1, "
            "added_image_count = added_image_count + ?, updated = ? WHERE id = ?",
            (1 if added else 0, now, incoming_id),
        )
    conn.execute(
        "UPDATE incoming_transactions SET status = CASE WHEN received_image_count >= total_image_count "
        "THEN 'FINISHED' ELSE 'PROCESSING' END, updated = ? WHERE id = ? AND status <> 'FAILED'",
        (now, incoming_id),
    )
    return get_incoming(conn, incoming_id)


def set_incoming_status(conn: Connection, transaction_id: int, status: str, now: int) -> None:
    extra = ", received_image_count = total_image_count" if status == "FINISHED" else ""
    conn.execute(f"UPDATE incoming_transactions SET status = ?, updated = ?{extra} WHERE id = ?",
                 (status, now, transaction_id))


def list_incoming(conn: Connection, start: int, count: int) -> list[IncomingTransaction]:
    rows = conn.all(f"SELECT {_IN} FROM incoming_transactions ORDER BY updated DESC, id DESC LIMIT ? OFFSET ?",
                    (count, start))
    return [row_to_incoming(r) for r in rows]


def delete_incoming(conn: Connection, transaction_id: int) -> None:
    conn.execute("DELETE FROM incoming_transactions WHERE id = ?", (transaction_id,))


def incoming_image_ids(conn: Connection, transaction_id: int) -> list[int]:
    return [r["image_id"] for r in conn.all(
        "SELECT image_id FROM incoming_images WHERE incoming_transaction_id = ? AND image_id IS NOT NULL "
        "ORDER BY sequence_number", (transaction_id,))]


def revert_stale_processing(conn: Connection, older_than: int) -> None:
    conn.execute("UPDATE outgoing_transactions SET status = 'WAITING' WHERE status = 'PROCESSING' AND updated < ?",
                 (older_than,))
    conn.execute("UPDATE incoming_transactions SET status = 'WAITING' WHERE status = 'PROCESSING' AND updated < ?",
                 (older_than,))


def images_existing(conn: Connection, image_ids: list[int]) -> list[dict]:
    if not image_ids:
        return []
    marks = ", ".join("?" for _ in image_ids)
    return conn.all(f"SELECT id, series_id, sop_instance_uid, image_type, instance_number FROM images "
                    f"WHERE id IN ({marks})", image_ids)
