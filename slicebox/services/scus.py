"""SCUs: remote DICOM listeners (PACS) this box sends images to.

:func:`send_images` is the one way images leave for a PACS (``POST
/scus/{id}/send`` and forwarding rules call it): the stored bytes, not
anonymized (as Slicebox 2.0), over one association, each image in its own
transfer syntax when the peer accepts it, decompressed otherwise.
"""
from __future__ import annotations

import functools
import logging
from typing import Sequence

from slicebox.context import Services
from slicebox.db import scps as repo
from slicebox.errors import BadGateway, BadRequest, NotFound
from slicebox.models import Page, Scu, ScuSendResult
from slicebox.net import scu as net_scu
from slicebox.services import logs
from slicebox.services.dicom_nodes import ae_title_or_400, host_or_400, name_or_400, port_or_400
from slicebox.storage.tempfiles import local_copy

logger = logging.getLogger(__name__)

SUBJECT = "SCU"
#: seconds to connect and to wait for the association to be accepted
CONNECT_TIMEOUT = 10.0
MAX_IMAGES_PER_SEND = 100_000


def add_scu(services: Services, name: str, ae_title: str, host: str, port: int) -> Scu:
    """Register a remote SCP; an SCU with the same name is returned unchanged (as Slicebox 2.0 does).

    Raises BadRequest as :func:`slicebox.services.scps.add_scp` does, for an empty host, or
    for a host and port another SCU uses.
    """
    name = name_or_400(name, "SCU")
    ae_title = ae_title_or_400(ae_title)
    host = host_or_400(host)
    port = port_or_400(port)
    with services.db.transaction() as conn:
        existing = repo.get_scu_by_name(conn, name)
        if existing is not None:
            return existing
        if repo.get_scu_by_address(conn, host, port) is not None:
            raise BadRequest(f"{host}:{port} is already used by another SCU")
        scu = repo.insert_scu(conn, name, ae_title, host, port)
        logs.info(services, SUBJECT, f"added SCU {name!r} ({ae_title} at {host}:{port})", conn)
        return scu


def list_scus(services: Services, page: Page) -> list[Scu]:
    with services.db.connection() as conn:
        return repo.list_scus(conn, page.start_index, page.count)


def get_scu(services: Services, scu_id: int) -> Scu:
    with services.db.connection() as conn:
        scu = repo.get_scu(conn, scu_id)
    if scu is None:
        raise NotFound(f"No SCU found for id {scu_id}")
    return scu


def delete_scu(services: Services, scu_id: int) -> None:
    """Remove an SCU; a missing one is fine."""
    with services.db.transaction() as conn:
        scu = repo.get_scu(conn, scu_id)
        if scu is None:
            return
        repo.delete_scu(conn, scu_id)
        logs.info(services, SUBJECT, f"removed SCU {scu.name!r}", conn)


def send_images(services: Services, scu_id: int, image_ids: Sequence[int]) -> ScuSendResult:
    """Send stored images to the SCU's peer over one association; returns when all are answered.

    Warning statuses count as success.  Nothing is retried.

    Raises
    ------
    BadRequest
        ``image_ids`` is not a list of integers.
    NotFound
        No SCU ``scu_id``, or one of the images is not stored (nothing is sent).
    BadGateway
        The peer is unreachable, refused the association, broke it off, or
        answered a failure status for some images (the message names the peer
        and those images; the others were stored there).
    """
    if not isinstance(image_ids, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                  for i in image_ids):
        raise BadRequest("image ids must be a list of integers")
    if len(image_ids) > MAX_IMAGES_PER_SEND:
        raise BadRequest(f"at most {MAX_IMAGES_PER_SEND} images per send")
    scu = get_scu(services, scu_id)
    ids = list(dict.fromkeys(image_ids))  # each image once, in the order asked
    with services.db.connection() as conn:
        existing = repo.existing_image_ids(conn, ids)
    missing = [i for i in ids if i not in existing]
    if missing:
        raise NotFound(f"images not found: {', '.join(map(str, missing[:20]))}")
    if not ids:
        return ScuSendResult(scu=scu, sent=())
    peer = f"SCU {scu.name!r} ({scu.ae_title} at {scu.host}:{scu.port})"
    items: list[net_scu.Item] = []
    unreadable: list[str] = []
    for image_id in ids:
        opener = functools.partial(local_copy, services.storage, image_id)
        try:
            with opener() as path:
                meta = net_scu.read_meta(path)
        except NotFound:
            raise NotFound(f"dataset for image {image_id} not found") from None
        except (OSError, ValueError, EOFError) as exc:
            unreadable.append(f"{image_id} ({exc})")
            continue
        items.append(net_scu.Item(key=image_id, meta=meta, open=opener))
    try:
        results = net_scu.send(scu.host, scu.port, scu.ae_title, str(services.config["SCU_AE_TITLE"]),
                               items, timeout=CONNECT_TIMEOUT)
    except net_scu.AssociationFailed as exc:
        message = f"sending {len(ids)} image(s) to {peer} failed: {exc}"
        logs.error(services, SUBJECT, message)
        raise BadGateway(message) from None
    failed = [f"{r.key} ({r.detail})" for r in results if not r.ok] + unreadable
    sent = tuple(r.key for r in results if r.ok)
    if failed:
        message = (f"{peer} did not store {len(failed)} of {len(ids)} image(s): "
                   + "; ".join(failed[:20]) + (" ..." if len(failed) > 20 else ""))
        logs.error(services, SUBJECT, message)
        raise BadGateway(message)
    logs.info(services, SUBJECT, f"sent {len(sent)} image(s) to {peer}")
    return ScuSendResult(scu=scu, sent=sent,
                         warnings=tuple(r.key for r in results if r.category == "Warning"),
                         decompressed=tuple(r.key for r in results if r.decompressed))
