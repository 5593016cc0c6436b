"""Forwarding rules: every image that arrives from a source goes on to a destination.

The queue is in the database.  Ingest writes one ``forwarding_images`` row per
matching rule in the same transaction that stores the image (so a crash can
not lose it).  The forwarding worker (a supervisor part, jobs/forwarding.py,
calling :func:`run_once`) then:

1. closes batches: the images one rule collected for one series become one
   forwarding transaction once the series was quiet for ``FORWARDING_QUIET``
   seconds (or waited ``FORWARDING_MAX_WAIT``);
2. dispatches PENDING transactions through :data:`DESTINATIONS`: a box gets one
   outgoing box transaction with the box's default profile (the box transfer
   worker, itself restart-safe, takes it from there; ``boxes.queue``); an SCU gets the images
   through ``services.scus.send_images``; a failure is logged and retried with
   backoff, never dropped;
3. notices delivery (the box transaction FINISHED; the SCU call returned) and,
   once every rule has delivered an image, deletes it if a rule with
   ``keepImages=false`` asked so and every destination confirmed it (an image
   a peer refused is kept and logged).

A dispatch to a box is recorded as DISPATCHING before the box queues the
images; if the process dies before the outgoing transaction's id is recorded,
the next run adopts that outgoing transaction instead of queueing the images
a second time.  Deleting a rule deletes its queue and the box transactions
still under way for it.
"""
from __future__ import annotations

import logging
from typing import Callable

from slicebox.clock import now_ms
from slicebox.context import Services
from slicebox.db import IntegrityError
from slicebox.db import boxes as box_repo
from slicebox.db import filtering as filtering_repo
from slicebox.db import forwarding as repo
from slicebox.errors import BadRequest, NotFound, SliceboxError
from slicebox.models import (DESTINATION_TYPES, AnonymizationProfile, Destination, ForwardingRule, ImageTagValues,
                             Page)
from slicebox.services import boxes, images, logs, scus
from slicebox.services.filtering import existing_source

logger = logging.getLogger(__name__)

LOG_SUBJECT = "Forwarding"
#: Longest pause in ms before a failed dispatch is tried again.
MAX_BACKOFF_MS = 60_000


class DestinationUnavailable(Exception):
    """The destination cannot take the images now; the transaction is tried again later."""


# -- rules ----------------------------------------------------------------------------------
def list_rules(services: Services, page: Page) -> list[ForwardingRule]:
    with services.db.connection() as conn:
        return repo.list_rules(conn, page.start_index, page.count)


def _existing_destination(conn, destination_type: str, destination_id: int) -> Destination:
    if destination_type not in DESTINATION_TYPES:
        raise BadRequest(f"destinationType must be one of {', '.join(DESTINATION_TYPES)}")
    name = repo.destination_name(conn, destination_type, destination_id)
    if name is None:
        raise NotFound(f"no {destination_type} destination with id {destination_id}")
    return Destination(type=destination_type, name=name, id=destination_id)


def add_rule(services: Services, source_ref: tuple[str, int], destination_ref: tuple[str, int],
             keep_images: bool) -> ForwardingRule:
    """Add a rule; an existing rule with the same source and destination is returned as it is."""
    if source_ref[0] == destination_ref[0] == "box" and source_ref[1] == destination_ref[1]:
        raise BadRequest("a box cannot forward back to itself")
    try:
        with services.db.transaction() as conn:
            source = existing_source(conn, *source_ref)
            destination = _existing_destination(conn, *destination_ref)
            existing = repo.find_rule(conn, source, destination)
            if existing is not None:
                return existing
            rule = repo.insert_rule(conn, source, destination, keep_images)
            logs.info(services, LOG_SUBJECT, f"forwarding rule {rule.id}: {source.type} {source.name!r} -> "
                      f"{destination.type} {destination.name!r} (keepImages={keep_images})", conn)
            return rule
    except IntegrityError:  # the same rule was added concurrently
        with services.db.connection() as conn:
            existing = repo.find_rule(conn, source, destination)
        if existing is None:
            raise
        return existing


def delete_rule(services: Services, rule_id: int) -> None:
    """Delete a rule and stop what is pending for it (its box transactions under way included)."""
    with services.db.transaction() as conn:
        rule = repo.get_rule(conn, rule_id)
        if rule is None:
            return
        outgoing = repo.enroute_outgoing_ids(conn, rule_id)
        repo.delete_rule(conn, rule_id)  # queue rows and transactions cascade
        logs.info(services, LOG_SUBJECT, f"deleted forwarding rule {rule_id}", conn)
    for outgoing_id in outgoing:
        boxes.delete_outgoing(services, outgoing_id)


def purge_orphans(services: Services) -> list[int]:
    """Delete rules whose source or destination was deleted (a periodic sweep); their images stay."""
    with services.db.connection() as conn:
        orphans = repo.orphaned_rule_ids(conn, filtering_repo.SOURCE_TABLES)
    for rule_id in orphans:
        delete_rule(services, rule_id)
        logs.warn(services, LOG_SUBJECT, f"deleted forwarding rule {rule_id}: its source or destination "
                  "no longer exists (its images were kept)")
    return orphans


# -- destinations ----------------------------------------------------------------------------
def _dispatch_box(services: Services, tx: dict, image_ids: list[int]) -> int | None:
    """Queue the images for the box as one outgoing transaction; its id (the box worker delivers)."""
    box_id = tx["destination_id"]
    with services.db.connection() as conn:
        adopted = repo.adoptable_outgoing(conn, box_id, tx["updated"] - 2000, image_ids) \
            if tx["status"] == "DISPATCHING" else None
        if adopted is None:
            repo.set_status(conn, tx["id"], "DISPATCHING", now_ms())
            row = box_repo.get_box_row(conn, box_id)
            box = None if row is None else box_repo.row_to_box(row, 0)
    if adopted is not None:
        return adopted
    if box is None:
        raise DestinationUnavailable(f"box {tx['destination_name']!r} (id {box_id}) no longer exists")
    # The box service queues in its own transaction: the DISPATCHING/adopt step above makes
    # a crash between its commit and ours harmless.
    options = box.profile if "BASIC_PROFILE" in box.profile else ("BASIC_PROFILE", *box.profile)
    items = tuple(ImageTagValues(image_id=i) for i in image_ids)
    try:
        outgoing = boxes.queue(services, box_id, items, AnonymizationProfile(options=tuple(options)))
    except NotFound as exc:
        raise DestinationUnavailable(exc.message) from None
    return outgoing.id


def _dispatch_scu(services: Services, tx: dict, image_ids: list[int]) -> None:
    """Send the images to the SCU's PACS over one association; delivered when this returns.

    A peer that is down, refuses or answers a failure status raises BadGateway
    (a SliceboxError): the transaction is postponed and retried with backoff.
    """
    scus.send_images(services, tx["destination_id"], image_ids)
    return None


#: destination type -> dispatch(services, transaction row, image ids) returning the box outgoing
#: transaction id (delivery noticed later), or None when the destination has the images on return.
DESTINATIONS: dict[str, Callable[[Services, dict, list[int]], int | None]] = {
    "box": _dispatch_box,
    "scu": _dispatch_scu,
}


# -- the worker's round ----------------------------------------------------------------------
def run_once(services: Services) -> None:
    """One round: close quiet batches, dispatch due transactions, notice deliveries, finalize."""
    cfg = services.config
    now = now_ms()
    close_batches(services, now - int(float(cfg["FORWARDING_QUIET"]) * 1000),
                  now - int(float(cfg["FORWARDING_MAX_WAIT"]) * 1000))
    dispatch_due(services)
    check_enroute(services)
    finalize(services)


def close_batches(services: Services, quiet_before: int, waited_before: int) -> list[int]:
    created = []
    with services.db.connection() as conn:
        ready = repo.ready_batches(conn, quiet_before, waited_before)
    for group in ready:
        with services.db.transaction() as conn:
            tx_id = repo.create_transaction(conn, group["rule_id"], group["series_id"], now_ms())
        if tx_id is not None:
            created.append(tx_id)
    return created


def _postpone(services: Services, tx: dict, reason: str) -> None:
    with services.db.transaction() as conn:
        attempts = tx["attempts"] + 1
        delay = min(MAX_BACKOFF_MS, 1000 * 2 ** min(attempts, 16))
        repo.postpone(conn, tx["id"], now_ms() + delay, now_ms())
        if attempts == 1 or attempts % 10 == 0:  # the event log stays readable
            logs.warn(services, LOG_SUBJECT, f"forwarding transaction {tx['id']} to {tx['destination_type']} "
                      f"{tx['destination_name']!r} failed (attempt {attempts}), retrying: {reason}", conn)
    logger.warning("forwarding transaction %s failed (attempt %s): %s", tx["id"], attempts, reason)


def dispatch_due(services: Services) -> None:
    with services.db.connection() as conn:
        due = repo.transactions(conn, "PENDING", now_ms()) + repo.transactions(conn, "DISPATCHING")
    for tx in due:
        with services.db.connection() as conn:
            image_ids = repo.transaction_image_ids(conn, tx["id"])
        if not image_ids:
            continue  # all deleted meanwhile; finalize() drops it
        dispatch = DESTINATIONS.get(tx["destination_type"])
        try:
            if dispatch is None:
                raise DestinationUnavailable(f"unknown destination type {tx['destination_type']!r}")
            outgoing_id = dispatch(services, tx, image_ids)
        except (DestinationUnavailable, SliceboxError, OSError) as exc:
            _postpone(services, tx, getattr(exc, "message", None) or str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - a bug in one destination must not stop the others
            logger.exception("forwarding transaction %s failed", tx["id"])
            _postpone(services, tx, f"internal error: {exc}")
            continue
        with services.db.transaction() as conn:
            if outgoing_id is None:
                repo.mark_delivered(conn, tx["id"], None, now_ms())
                logs.info(services, LOG_SUBJECT, f"forwarded {len(image_ids)} image(s) to "
                          f"{tx['destination_type']} {tx['destination_name']!r}", conn)
            else:
                repo.set_status(conn, tx["id"], "ENROUTE", now_ms(), outgoing_id)


def check_enroute(services: Services) -> None:
    with services.db.connection() as conn:
        enroute = repo.settled_enroute(conn)
    for tx in enroute:
        with services.db.transaction() as conn:
            state = repo.outgoing_state(conn, tx["outgoing_id"])
            if state is None:
                # Someone deleted the box transaction: that stops this forwarding (images stay).
                logs.warn(services, LOG_SUBJECT, f"box transaction {tx['outgoing_id']} of forwarding transaction "
                          f"{tx['id']} was deleted; its images are not forwarded", conn)
                repo.delete_transaction(conn, tx["id"])
                continue
            status, confirmed, skipped = state
            if status == "FINISHED":
                repo.mark_delivered(conn, tx["id"], confirmed, now_ms())
                logs.info(services, LOG_SUBJECT, f"forwarded {len(confirmed)} image(s) to box "
                          f"{tx['destination_name']!r}" + (f" ({len(skipped)} refused and kept)" if skipped else ""),
                          conn)
        if status == "FAILED":  # the peer gave up on it: queue the images again, later
            _postpone(services, tx, f"box transaction {tx['outgoing_id']} failed")


def finalize(services: Services) -> list[int]:
    """Forget images every rule delivered; delete those a keepImages=false rule wants gone."""
    deleted: list[int] = []
    while True:
        with services.db.connection() as conn:
            rows = repo.finished_images(conn)
        if not rows:
            break
        doomed = [r["image_id"] for r in rows if r["unwanted"] and not r["skipped"]]
        kept = [r["image_id"] for r in rows if r["unwanted"] and r["skipped"]]
        if doomed:
            deleted.extend(images.delete_images(services, doomed))
        with services.db.transaction() as conn:
            repo.forget_images(conn, [r["image_id"] for r in rows])
            if kept:
                logs.warn(services, LOG_SUBJECT, f"kept {len(kept)} image(s) a destination refused although "
                          f"keepImages=false: {', '.join(map(str, kept[:20]))}", conn)
        if len(rows) < 1000:
            break
    with services.db.transaction() as conn:
        repo.drop_finished_transactions(conn)
    if deleted:
        logs.info(services, LOG_SUBJECT, f"deleted {len(deleted)} forwarded image(s) (keepImages=false)")
    return deleted
