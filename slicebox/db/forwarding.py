"""Forwarding rules and their queue (forwarding_images grouped into forwarding_transactions)."""
from __future__ import annotations

from slicebox.db import Connection
from slicebox.models import Destination, ForwardingRule, Source

_RULE = ("SELECT id, source_type, source_name, source_id, destination_type, destination_name, destination_id, "
         "keep_images FROM forwarding_rules")


def _rule(row: dict) -> ForwardingRule:
    return ForwardingRule(id=row["id"], source=Source(row["source_type"], row["source_name"], row["source_id"]),
                          destination=Destination(row["destination_type"], row["destination_name"],
                                                  row["destination_id"]),
                          keep_images=bool(row["keep_images"]))


# -- rules ------------------------------------------------------------------------------
def list_rules(conn: Connection, start: int, count: int) -> list[ForwardingRule]:
    return [_rule(r) for r in conn.all(f"{_RULE} ORDER BY id LIMIT ? OFFSET ?", (count, start))]


def get_rule(conn: Connection, rule_id: int) -> ForwardingRule | None:
    row = conn.one(f"{_RULE} WHERE id = ?", (rule_id,))
    return None if row is None else _rule(row)


def find_rule(conn: Connection, source: Source, destination: Destination) -> ForwardingRule | None:
    row = conn.one(f"{_RULE} WHERE source_type = ? AND source_id = ? AND destination_type = ? "
                   "AND destination_id = ?", (source.type, source.id, destination.type, destination.id))
    return None if row is None else _rule(row)


def insert_rule(conn: Connection, source: Source, destination: Destination, keep_images: bool) -> ForwardingRule:
    rule_id = conn.scalar(
        "INSERT INTO forwarding_rules (source_type, source_name, source_id, destination_type, destination_name, "
        "destination_id, keep_images) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (source.type, source.name, source.id, destination.type, destination.name, destination.id,
         1 if keep_images else 0))
    return get_rule(conn, rule_id)


def delete_rule(conn: Connection, rule_id: int) -> None:
    conn.execute("DELETE FROM forwarding_rules WHERE id = ?", (rule_id,))


def destination_name(conn: Connection, destination_type: str, destination_id: int) -> str | None:
    table = {"box": "boxes", "scu": "scus"}[destination_type]  # constants, never input
    row = conn.one(f"SELECT name FROM {table} WHERE id = ?", (destination_id,))
    return None if row is None else row["name"]


# -- the queue --------------------------------------------------------------------------------
def enqueue(conn: Connection, source: Source, image_id: int, series_id: int, now: int) -> int:
    """Queue a newly stored image for every rule of its source (inside the storing transaction)."""
    return conn.execute(
        "INSERT INTO forwarding_images (rule_id, image_id, series_id, queued) "
        "SELECT id, ?, ?, ? FROM forwarding_rules WHERE source_type = ? AND source_id = ? "
        "ON CONFLICT (rule_id, image_id) DO NOTHING",
        (image_id, series_id, now, source.type, source.id)).rowcount


def has_rules_for(conn: Connection, source: Source) -> bool:
    return conn.one("SELECT 1 AS x FROM forwarding_rules WHERE source_type = ? AND source_id = ? LIMIT 1",
                    (source.type, source.id)) is not None


def ready_batches(conn: Connection, quiet_before: int, waited_before: int) -> list[dict]:
    """(rule_id, series_id) groups of unbatched images that are quiet (or waited long enough)."""
    return conn.all(
        "SELECT rule_id, series_id FROM forwarding_images WHERE transaction_id IS NULL "
        "GROUP BY rule_id, series_id HAVING MAX(queued) <= ? OR MIN(queued) <= ? ORDER BY MIN(queued)",
        (quiet_before, waited_before))


def create_transaction(conn: Connection, rule_id: int, series_id: int, now: int) -> int | None:
    """Close the open batch of (rule, series) into a PENDING transaction; None when it is empty."""
    tx_id = conn.scalar(
        "INSERT INTO forwarding_transactions (rule_id, series_id, status, created, updated) "
        "VALUES (?, ?, 'PENDING', ?, ?) RETURNING id", (rule_id, series_id, now, now))
    moved = conn.execute("UPDATE forwarding_images SET transaction_id = ? WHERE rule_id = ? AND series_id = ? "
                         "AND transaction_id IS NULL", (tx_id, rule_id, series_id)).rowcount
    if moved == 0:
        conn.execute("DELETE FROM forwarding_transactions WHERE id = ?", (tx_id,))
        return None
    return tx_id


_TX = ("SELECT t.id, t.rule_id, t.series_id, t.status, t.outgoing_id, t.attempts, t.next_attempt, t.created, "
       "t.updated, r.destination_type, r.destination_id, r.destination_name, r.keep_images "
       "FROM forwarding_transactions t JOIN forwarding_rules r ON r.id = t.rule_id")


def transactions(conn: Connection, status: str, due_before: int | None = None) -> list[dict]:
    if due_before is None:
        return conn.all(f"{_TX} WHERE t.status = ? ORDER BY t.id", (status,))
    return conn.all(f"{_TX} WHERE t.status = ? AND t.next_attempt <= ? ORDER BY t.id", (status, due_before))


def settled_enroute(conn: Connection) -> list[dict]:
    """ENROUTE transactions whose box transaction finished, failed or was deleted (the rest wait)."""
    return conn.all(
        f"{_TX} LEFT JOIN outgoing_transactions o ON o.id = t.outgoing_id WHERE t.status = 'ENROUTE' "
        "AND (o.id IS NULL OR o.status IN ('FINISHED', 'FAILED')) ORDER BY t.id")


def get_transaction(conn: Connection, tx_id: int) -> dict | None:
    return conn.one(f"{_TX} WHERE t.id = ?", (tx_id,))


def transaction_image_ids(conn: Connection, tx_id: int) -> list[int]:
    return [r["image_id"] for r in conn.all(
        "SELECT image_id FROM forwarding_images WHERE transaction_id = ? ORDER BY image_id", (tx_id,))]


def set_status(conn: Connection, tx_id: int, status: str, now: int, outgoing_id: int | None = None) -> None:
    conn.execute("UPDATE forwarding_transactions SET status = ?, outgoing_id = ?, updated = ? WHERE id = ?",
                 (status, outgoing_id, now, tx_id))


def postpone(conn: Connection, tx_id: int, next_attempt: int, now: int) -> int:
    """Back to PENDING, tried again at ``next_attempt``; returns the attempts so far."""
    conn.execute("UPDATE forwarding_transactions SET status = 'PENDING', outgoing_id = NULL, "
                 "attempts = attempts + 1, next_attempt = ?, updated = ? WHERE id = ?", (next_attempt, now, tx_id))
    return conn.scalar("SELECT attempts FROM forwarding_transactions WHERE id = ?", (tx_id,)) or 0


def delete_transaction(conn: Connection, tx_id: int) -> None:
    conn.execute("DELETE FROM forwarding_transactions WHERE id = ?", (tx_id,))


def enroute_outgoing_ids(conn: Connection, rule_id: int) -> list[int]:
    return [r["outgoing_id"] for r in conn.all(
        "SELECT outgoing_id FROM forwarding_transactions WHERE rule_id = ? AND status IN ('DISPATCHING', 'ENROUTE') "
        "AND outgoing_id IS NOT NULL", (rule_id,))]


def adoptable_outgoing(conn: Connection, box_id: int, created_from: int, image_ids: list[int]) -> int | None:
    """An outgoing box transaction created since ``created_from`` with exactly these images, not yet claimed.

    Recovers a dispatch interrupted between the box queueing the images and
    us recording it (so a crash there never sends the images twice).
    """
    candidates = conn.all(
        "SELECT o.id FROM outgoing_transactions o WHERE o.box_id = ? AND o.created >= ? AND o.total_image_count = ? "
        "AND NOT EXISTS (SELECT 1 FROM forwarding_transactions f WHERE f.outgoing_id = o.id) ORDER BY o.id",
        (box_id, created_from, len(image_ids)))
    wanted = sorted(image_ids)
    for c in candidates:
        got = [r["image_id"] for r in conn.all(
            "SELECT image_id FROM outgoing_images WHERE outgoing_transaction_id = ? ORDER BY image_id", (c["id"],))]
        if got == wanted:
            return c["id"]
    return None


def outgoing_state(conn: Connection, outgoing_id: int) -> tuple[str, list[int], list[int]] | None:
    """(status, image ids the peer has, image ids skipped) of a box outgoing transaction; None if deleted."""
    row = conn.one("SELECT status FROM outgoing_transactions WHERE id = ?", (outgoing_id,))
    if row is None:
        return None
    rows = conn.all("SELECT image_id, sent FROM outgoing_images WHERE outgoing_transaction_id = ?", (outgoing_id,))
    return (row["status"], [r["image_id"] for r in rows if r["sent"] == 1],
            [r["image_id"] for r in rows if r["sent"] == 2])


def mark_delivered(conn: Connection, tx_id: int, confirmed: list[int] | None, now: int) -> None:
    """The destination has the transaction's images (``confirmed``: only these; the rest were skipped)."""
    if confirmed is None:
        conn.execute("UPDATE forwarding_images SET delivered = 1 WHERE transaction_id = ?", (tx_id,))
    else:
        conn.execute("UPDATE forwarding_images SET delivered = 2 WHERE transaction_id = ?", (tx_id,))
        for start in range(0, len(confirmed), 500):
            chunk = confirmed[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            conn.execute(f"UPDATE forwarding_images SET delivered = 1 WHERE transaction_id = ? "
                         f"AND image_id IN ({marks})", (tx_id, *chunk))
    set_status(conn, tx_id, "DELIVERED", now)


def finished_images(conn: Connection, limit: int = 1000) -> list[dict]:
    """Images every rule has delivered: (image_id, delete) where delete = some rule wants it gone
    and every destination confirmed it."""
    return conn.all(
        "SELECT i.image_id, "
        "MAX(CASE WHEN r.keep_images = 0 THEN 1 ELSE 0 END) AS unwanted, "
        "MAX(CASE WHEN i.delivered = 2 THEN 1 ELSE 0 END) AS skipped "
        "FROM forwarding_images i JOIN forwarding_rules r ON r.id = i.rule_id "
        # only images some rule delivered: a long queue for an unreachable destination is not scanned
        "WHERE i.image_id IN (SELECT d.image_id FROM forwarding_images d WHERE d.delivered > 0) "
        "GROUP BY i.image_id HAVING MIN(i.delivered) > 0 LIMIT ?", (limit,))


def forget_images(conn: Connection, image_ids: list[int]) -> None:
    for start in range(0, len(image_ids), 500):
        chunk = image_ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        conn.execute(f"DELETE FROM forwarding_images WHERE image_id IN ({marks})", chunk)


def drop_finished_transactions(conn: Connection) -> None:
    conn.execute("DELETE FROM forwarding_transactions WHERE status = 'DELIVERED' AND NOT EXISTS "
                 "(SELECT 1 FROM forwarding_images i WHERE i.transaction_id = forwarding_transactions.id)")
    # a transaction whose images were all deleted meanwhile has nothing left to do
    conn.execute("DELETE FROM forwarding_transactions WHERE status = 'PENDING' AND NOT EXISTS "
                 "(SELECT 1 FROM forwarding_images i WHERE i.transaction_id = forwarding_transactions.id)")


def pending_count(conn: Connection) -> int:
    return conn.scalar("SELECT COUNT(*) FROM forwarding_images WHERE delivered = 0") or 0


def orphaned_rule_ids(conn: Connection, source_tables: dict[str, str]) -> list[int]:
    """Rules whose source (type -> table) or destination no longer exists."""
    ids: set[int] = set()
    for kind, table in list(source_tables.items()):
        ids.update(r["id"] for r in conn.all(
            f"SELECT id FROM forwarding_rules r WHERE r.source_type = ? AND NOT EXISTS "
            f"(SELECT 1 FROM {table} s WHERE s.id = r.source_id)", (kind,)))
    for kind, table in (("box", "boxes"), ("scu", "scus")):
        ids.update(r["id"] for r in conn.all(
            f"SELECT id FROM forwarding_rules r WHERE r.destination_type = ? AND NOT EXISTS "
            f"(SELECT 1 FROM {table} d WHERE d.id = r.destination_id)", (kind,)))
    return sorted(ids)
