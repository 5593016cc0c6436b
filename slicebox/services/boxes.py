"""Boxes: connections to other boxes, outgoing and incoming transactions.

A POLL box (``create_connection``) is a peer that talks to us: it pushes images
to our token routes and polls our outgoing queue.  A PUSH box (``connect``) is
a peer we talk to: our transfer worker (services/box_transfer.py) pushes and
polls.  All state is in the database, so a restart resumes where it stopped.
"""
from __future__ import annotations

import json
import logging
import uuid
import zlib
from typing import BinaryIO
from urllib.parse import urlparse

from slicebox.clock import now_ms
from slicebox.context import Services
from slicebox.db import IntegrityError
from slicebox.db import boxes as repo
from slicebox.errors import BadRequest, InvalidDicom, NotFound, Unauthorized
from slicebox.models import (TRANSACTION_STATUSES, AnonymizationProfile, Box, Image, ImageTagValues,
                             IncomingTransaction, OutgoingImage, OutgoingTransaction, Page, Source)
from slicebox.db.rows import row_to_image
from slicebox.dicom.tagpath import tag_path_to_json
from slicebox.services import image_anonymization, ingest, logs
from slicebox.storage.tempfiles import CHUNK, discard, new_temp_path

logger = logging.getLogger(__name__)

#: A box is online when we heard from it within this many milliseconds.
ONLINE_WINDOW_MS = 30_000
STATUSES = TRANSACTION_STATUSES


def _online_since() -> int:
    return now_ms() - ONLINE_WINDOW_MS


def _box(row: dict) -> Box:
    return repo.row_to_box(row, _online_since())


# -- connections --------------------------------------------------------------------
def create_connection(services: Services, name: str, default_profile: AnonymizationProfile) -> Box:
    """A POLL box: hand its base URL to the peer, which then does all the talking."""
    profile = default_profile.options
    with services.db.transaction() as conn:
        existing = repo.get_box_row_by_name(conn, name)
        if existing is not None:
            if existing["send_method"] != "POLL":
                raise BadRequest(f"a box named {name!r} already exists and connects the other way")
            return _box(existing)
        token = str(uuid.uuid4())
        base_url = f"{services.config['PUBLIC_URL']}/api/transactions/{token}"
        box_id = repo.insert_box(conn, name, token, base_url, "POLL", profile)
        logs.info(services, "Box", f"created connection {name!r} for a remote box", conn)
        return _box(repo.get_box_row(conn, box_id))


def connect(services: Services, name: str, base_url: str, default_profile: AnonymizationProfile) -> Box:
    """A PUSH box: we push to and poll the peer at ``base_url``."""
    profile = default_profile.options
    base_url = base_url.strip().rstrip("/")
    parsed = urlparse(base_url)
    token = parsed.path.rsplit("/", 1)[-1] if parsed.path else ""
    if parsed.scheme not in ("http", "https") or not parsed.netloc or not _is_token(token):
        raise BadRequest("Malformed box base url: expected http(s)://host/api/transactions/<token>")
    with services.db.transaction() as conn:
        existing = repo.get_box_row_by_name(conn, name)
        if existing is not None:
            if existing["send_method"] != "PUSH" or existing["base_url"] != base_url:
                raise BadRequest(f"a box named {name!r} already exists with another connection")
            return _box(existing)
        try:
            box_id = repo.insert_box(conn, name, token, base_url, "PUSH", profile)
        except IntegrityError:
            raise BadRequest("this connection URL is already used by another box") from None
        logs.info(services, "Box", f"connected to remote box {name!r}", conn)
        return _box(repo.get_box_row(conn, box_id))


def _is_token(token: str) -> bool:
    try:
        uuid.UUID(token)
        return True
    except ValueError:
        return False


def list_boxes(services: Services, page: Page) -> list[Box]:
    with services.db.connection() as conn:
        return [_box(r) for r in repo.list_box_rows(conn, page.start_index, page.count)]


def delete_box(services: Services, box_id: int) -> None:
    with services.db.connection() as conn:
        repo.delete_box(conn, box_id)


# -- sending --------------------------------------------------------------------------
def queue(services: Services, box_id: int, items: tuple[ImageTagValues, ...],
          profile: AnonymizationProfile) -> OutgoingTransaction:
    """Queue images for a box as one outgoing transaction; returns at once.

    ``items`` name the images and their custom values (already checked: see
    slicebox/api/bodies.py); 404 for an unknown box or image.  Used by
    ``POST /boxes/{id}/send`` and by forwarding rules.
    """
    now = now_ms()
    with services.db.transaction() as conn:
        row = repo.get_box_row(conn, box_id)
        if row is None:
            raise NotFound(f"No box found for id {box_id}")
        existing = {r["id"] for r in repo.images_existing(conn, [i.image_id for i in items])}
        missing = [i.image_id for i in items if i.image_id not in existing]
        if missing:
            raise NotFound(f"images not found: {', '.join(map(str, missing[:20]))}")
        tx_id = repo.insert_outgoing(conn, box_id, row["name"], profile.options, len(items), now)
        for seq, item in enumerate(items, start=1):
            out_id = repo.insert_outgoing_image(conn, tx_id, item.image_id, seq)
            for tag_value in item.tag_values:
                repo.insert_outgoing_tag_value(conn, out_id, json.dumps(tag_path_to_json(tag_value.path),
                                                                        sort_keys=True), tag_value.value)
        if not items:
            repo.set_outgoing_status(conn, tx_id, "FINISHED", now)
        logs.info(services, "Box", f"queued {len(items)} image(s) for box {row['name']!r}", conn)
        tx = repo.get_outgoing(conn, tx_id)
    wake_transfers(services)
    return tx


def wake_transfers(services: Services) -> None:
    """Nudge the transfer worker if it runs in this process (it also runs on a timer)."""
    services.state.box_wakeup.set()


def list_outgoing(services: Services, page: Page) -> list[OutgoingTransaction]:
    with services.db.connection() as conn:
        return repo.list_outgoing(conn, page.start_index, page.count)


def list_incoming(services: Services, page: Page) -> list[IncomingTransaction]:
    with services.db.connection() as conn:
        return repo.list_incoming(conn, page.start_index, page.count)


def delete_outgoing(services: Services, transaction_id: int) -> None:
    """Delete (and so stop) an outgoing transaction."""
    with services.db.connection() as conn:
        repo.delete_outgoing(conn, transaction_id)


def delete_incoming(services: Services, transaction_id: int) -> None:
    with services.db.connection() as conn:
        repo.delete_incoming(conn, transaction_id)


def _images(conn, image_ids: list[int]) -> list[Image]:

    by_id = {r["id"]: row_to_image(r) for r in repo.images_existing(conn, image_ids)}
    return [by_id[i] for i in image_ids if i in by_id]


def outgoing_images(services: Services, transaction_id: int) -> list[Image]:
    with services.db.connection() as conn:
        if repo.get_outgoing(conn, transaction_id) is None:
            raise NotFound(f"outgoing transaction {transaction_id} not found")
        return _images(conn, repo.outgoing_image_ids(conn, transaction_id))


def incoming_images(services: Services, transaction_id: int) -> list[Image]:
    with services.db.connection() as conn:
        if repo.get_incoming(conn, transaction_id) is None:
            raise NotFound(f"incoming transaction {transaction_id} not found")
        return _images(conn, repo.incoming_image_ids(conn, transaction_id))


# -- the token routes (a peer talking to us) -------------------------------------------
def box_for_token(services: Services, token: str) -> Box:
    """The POLL box of a token, and note that the peer is alive; 401 otherwise."""
    with services.db.connection() as conn:
        row = repo.get_box_row_by_token(conn, token)
        if row is None or row["send_method"] != "POLL":
            raise Unauthorized("No box found for token")
        now = now_ms()
        if now - row["last_seen"] > 1000:  # at most one write a second per box
            repo.touch_box(conn, row["id"], now)
    return _box(row)


def inflate_to_temp(services: Services, stream: BinaryIO) -> str:
    """Inflate a raw-deflate body into a temporary file, in bounded memory."""
    path = new_temp_path(services.storage)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        with open(path, "wb") as out:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                out.write(inflater.decompress(chunk))
                while inflater.unconsumed_tail:
                    out.write(inflater.decompress(inflater.unconsumed_tail))
            out.write(inflater.flush())
        if not inflater.eof:
            # A peer that vanished mid-transfer leaves a stream without its final
            # block: never store what would be a truncated image.
            raise BadRequest("deflated body is incomplete (the transfer was cut short)")
    except zlib.error as exc:
        discard(path)
        raise BadRequest(f"body is not raw-deflate compressed: {exc}") from None
    except BaseException:
        discard(path)
        raise
    return path


def receive_image(services: Services, box: Box, remote_transaction_id: int, seq: int, total: int,
                  path: str) -> IncomingTransaction:
    """Store one image a peer sent in a transaction and count it exactly once.

    An image that cannot be stored is still counted as received (so the
    transaction can finish) and re-raised as InvalidDicom for a 400 answer.
    """
    if seq < 1 or total < 1 or seq > total:
        discard(path)
        raise BadRequest("sequencenumber must be between 1 and totalimagecount")
    source = Source(type="box", name=box.name, id=box.id)
    rejected: InvalidDicom | None = None
    image_id, added = None, False
    try:
        stored = ingest.store_file(services, path, source)
        image_id, added = stored.image.id, stored.created
    except InvalidDicom as exc:
        rejected = exc
        logs.warn(services, "Box", f"rejected image {seq}/{total} from box {box.name!r}: {exc.message}")
    now = now_ms()
    with services.db.transaction() as conn:
        incoming = repo.upsert_incoming(conn, box.id, box.name, remote_transaction_id, total, now)
        incoming = repo.record_incoming_image(conn, incoming.id, seq, image_id, added, now)
    if rejected is not None:
        raise rejected
    return incoming


def incoming_status(services: Services, box: Box, remote_transaction_id: int) -> str:
    with services.db.connection() as conn:
        incoming = repo.get_incoming_by_remote(conn, box.id, remote_transaction_id)
    if incoming is None:
        raise NotFound(f"no incoming transaction {remote_transaction_id} from this box")
    return incoming.status


def set_incoming_status(services: Services, box: Box, remote_transaction_id: int, status: str) -> None:
    if status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    with services.db.transaction() as conn:
        incoming = repo.get_incoming_by_remote(conn, box.id, remote_transaction_id)
        if incoming is None:
            raise NotFound(f"no incoming transaction {remote_transaction_id} from this box")
        repo.set_incoming_status(conn, incoming.id, status, now_ms())


def poll_outgoing(services: Services, box: Box, n: int) -> list[tuple[OutgoingTransaction, OutgoingImage]]:
    with services.db.connection() as conn:
        return repo.pending_outgoing(conn, box.id, max(1, min(n, 1000)))


def outgoing_file(services: Services, box: Box, transaction_id: int, outgoing_image_id: int) -> str:
    """A temporary file with the anonymized, raw-deflated dataset a peer fetches."""
    with services.db.connection() as conn:
        tx = repo.get_outgoing(conn, transaction_id)
        img = repo.get_outgoing_image(conn, transaction_id, outgoing_image_id)
        if tx is None or img is None or tx.box_id != box.id:
            raise NotFound("no such outgoing transaction image")
    try:
        return prepare_outgoing(services, tx, img)
    except NotFound:
        # The image was deleted after it was queued: skip it for good so the
        # peer does not ask again, and say so.
        mark_sent(services, tx.id, img.id, skipped_reason="image no longer exists")
        raise
    except BadRequest as exc:  # unreadable stored data: it will never succeed
        mark_sent(services, tx.id, img.id,
                  skipped_reason=f"image {img.image_id} cannot be anonymized: {exc.message}")
        raise


def mark_sent(services: Services, transaction_id: int, outgoing_image_id: int,
              skipped_reason: str | None = None) -> OutgoingTransaction | None:
    with services.db.transaction() as conn:
        tx = repo.mark_outgoing_image_sent(conn, transaction_id, outgoing_image_id, now_ms())
        if skipped_reason and tx is not None:
            logs.warn(services, "Box", f"skipped image {outgoing_image_id} of transaction {transaction_id} "
                      f"to box {tx.box_name!r}: {skipped_reason}", conn)
        if tx is not None and tx.status == "FINISHED":
            logs.info(services, "Box", f"transaction {tx.id} to box {tx.box_name!r} finished "
                      f"({tx.total_image_count} images)", conn)
    return tx


def outgoing_done(services: Services, box: Box, body) -> None:
    transaction_id, image_id = _transaction_image_ids(body)
    with services.db.connection() as conn:
        tx = repo.get_outgoing(conn, transaction_id)
        if tx is None or tx.box_id != box.id or repo.get_outgoing_image(conn, transaction_id, image_id) is None:
            raise NotFound("no such outgoing transaction image")
    mark_sent(services, transaction_id, image_id)


def outgoing_failed(services: Services, box: Box, body) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("transactionImage"), dict):
        raise BadRequest("body must be {transactionImage, message}")
    transaction_id, image_id = _transaction_image_ids(body["transactionImage"])
    message = str(body.get("message", ""))[:2000]
    with services.db.transaction() as conn:
        tx = repo.get_outgoing(conn, transaction_id)
        if tx is None or tx.box_id != box.id:
            raise NotFound("no such outgoing transaction")
        repo.set_outgoing_status(conn, transaction_id, "FAILED", now_ms())
        logs.error(services, "Box", f"box {box.name!r} failed to receive image {image_id} of transaction "
                   f"{transaction_id}: {message}", conn)


def _transaction_image_ids(body) -> tuple[int, int]:
    try:
        tx_id = body["transaction"]["id"]
        img_id = body["image"]["id"]
    except (TypeError, KeyError):
        raise BadRequest("body must be an outgoingTransactionImage {transaction:{id}, image:{id}}") from None
    if not isinstance(tx_id, int) or not isinstance(img_id, int):
        raise BadRequest("transaction.id and image.id must be integers")
    return tx_id, img_id


# -- outgoing data ------------------------------------------------------------------------
def prepare_outgoing(services: Services, tx: OutgoingTransaction, img: OutgoingImage) -> str:
    """Anonymize the image with the transaction's profile and tag values, then raw-deflate it.

    Returns the path of a temporary file the caller removes.  Raises NotFound
    when the image is gone.
    """
    with services.db.connection() as conn:
        tag_values = repo.outgoing_tag_values(conn, img.id)
    plain = image_anonymization.anonymized_copy(services, img.image_id, tx.profile, tag_values)
    try:
        return _deflate_file(services, plain)
    finally:
        discard(plain)


def _deflate_file(services: Services, path: str) -> str:
    out_path = new_temp_path(services.storage, suffix=".deflate")
    level = min(9, max(0, int(services.config["BOX_COMPRESSION_LEVEL"])))
    deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    try:
        with open(path, "rb") as src, open(out_path, "wb") as out:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                out.write(deflater.compress(chunk))
            out.write(deflater.flush())
    except BaseException:
        discard(out_path)
        raise
    return out_path


def revert_stale(services: Services, stale_ms: int = 60_000) -> None:
    with services.db.connection() as conn:
        repo.revert_stale_processing(conn, now_ms() - stale_ms)

