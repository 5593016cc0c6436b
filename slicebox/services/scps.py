"""SCPs: this box's DICOM listeners, and what they do with what peers send and ask.

``POST /scps`` only writes a row; the listener itself runs in the process
holding the service lock (supervisor provider ``jobs/scps.py``), which starts,
stops and restarts it within a supervisor interval of any change.  A port that
cannot be bound is logged (ERROR, subject SCP) and retried, never a crash.

Every received dataset goes through the one ingest path with source
``scp``; the C-STORE status says what happened: success only once the image
is stored (or already was), 0xC000/0xC001 for a dataset ingest refuses,
0xA900 when its SOP class is not the one it was sent as, 0xA700 when the box
could not store it (database or disk).  C-FIND and C-MOVE answer from the
hierarchy tables; C-MOVE sends to an SCU registered here with the destination
AE title.
"""
from __future__ import annotations

import functools
import logging
import threading
from typing import Iterator

from pydicom.dataset import Dataset

from slicebox.context import Services
from slicebox.db import dimse_query
from slicebox.db import scps as repo
from slicebox.dicom import parsing
from slicebox.dicom import query as dicom_query
from slicebox.errors import BadRequest, InvalidDicom, SliceboxError
from slicebox.models import Page, Scp, Source
from slicebox.net import scp as net_scp
from slicebox.services import ingest, logs
from slicebox.services.dicom_nodes import ae_title_or_400, name_or_400, port_or_400
from slicebox.storage.tempfiles import local_copy

logger = logging.getLogger(__name__)

SUBJECT = "SCP"
#: most matches one C-FIND answers, images one C-MOVE sends (DICOM counts them in a US)
MAX_FIND_RESULTS = 10_000
MAX_MOVE_IMAGES = 65_535


# -- the registry -----------------------------------------------------------------------
def add_scp(services: Services, name: str, ae_title: str, port: int) -> Scp:
    """Register a listener; an SCP with the same name is returned unchanged (as Slicebox 2.0 does).

    Raises BadRequest for an empty name, an AE title that is not 1-16 characters after
    trimming, a port outside 1-65535 or one another SCP uses.
    """
    name = name_or_400(name, "SCP")
    ae_title = ae_title_or_400(ae_title)
    port = port_or_400(port)
    with services.db.transaction() as conn:
        existing = repo.get_scp_by_name(conn, name)
        if existing is not None:
            return existing
        if repo.get_scp_by_port(conn, port) is not None:
            raise BadRequest(f"port {port} is already used by another SCP")
        scp = repo.insert_scp(conn, name, ae_title, port)
        logs.info(services, SUBJECT, f"added SCP {name!r} ({ae_title} on port {port})", conn)
        return scp


def list_scps(services: Services, page: Page) -> list[Scp]:
    with services.db.connection() as conn:
        return repo.list_scps(conn, page.start_index, page.count)


def all_scps(services: Services) -> list[Scp]:
    with services.db.connection() as conn:
        return repo.list_scps(conn)


def delete_scp(services: Services, scp_id: int) -> None:
    """Remove an SCP (its listener stops within a supervisor interval); a missing one is fine."""
    with services.db.transaction() as conn:
        scp = repo.get_scp(conn, scp_id)
        if scp is None:
            return
        repo.delete_scp(conn, scp_id)
        logs.info(services, SUBJECT, f"removed SCP {scp.name!r} (port {scp.port})", conn)


# -- receiving ----------------------------------------------------------------------------
def store_received(services: Services, scp: Scp, request: net_scp.StoreRequest) -> int:
    """Ingest one received dataset (consuming its file); the C-STORE status to answer."""
    source = Source("scp", scp.name, scp.id)
    try:
        ident = parsing.read_identity(request.path)
        if ident.sop_class_uid and request.sop_class_uid and ident.sop_class_uid != request.sop_class_uid:
            logs.error(services, SUBJECT,
                       f"SCP {scp.name!r} refused {request.sop_instance_uid} from {request.peer}: its SOP "
                       f"class {ident.sop_class_uid} is not {request.sop_class_uid} it was sent as")
            return net_scp.DOES_NOT_MATCH_SOP_CLASS
        ingest.store_file(services, request.path, source)
        return net_scp.SUCCESS
    except InvalidDicom as exc:
        logs.error(services, SUBJECT, f"SCP {scp.name!r} refused a dataset from {request.peer}: {exc.message}")
        return net_scp.CANNOT_UNDERSTAND
    except SliceboxError as exc:
        logs.error(services, SUBJECT, f"SCP {scp.name!r} refused a dataset from {request.peer}: {exc.message}")
        return net_scp.CANNOT_UNDERSTAND + 1
    except Exception as exc:  # noqa: BLE001 - database or disk: the peer may retry later
        logger.exception("SCP %s could not store a dataset", scp.name)
        try:
            logs.error(services, SUBJECT, f"SCP {scp.name!r} could not store a dataset from "
                                          f"{request.peer}: {type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - the database may be the reason
            logger.exception("could not write to the event log")
        return net_scp.OUT_OF_RESOURCES


def association_ended(services: Services, scp: Scp, report: net_scp.AssociationReport) -> None:
    """One log line per association that stored or refused something."""
    if not report.stored and not report.failed:
        return
    text = f"SCP {scp.name!r} received {report.stored} image(s) from {report.peer}"
    if report.failed:
        text += f", refused {report.failed}"
    if report.aborted:
        text += " (the association was aborted)"
    if report.failed or report.aborted:
        logs.warn(services, SUBJECT, text)
    else:
        logs.info(services, SUBJECT, text)


# -- query / retrieve ---------------------------------------------------------------------
def find(services: Services, scp: Scp, identifier: Dataset, model: str,
         peer: net_scp.Peer) -> Iterator[tuple[int, Dataset | None]]:
    """C-FIND: one pending response per matching patient, study or series (image) row."""
    try:
        q = dicom_query.parse_identifier(identifier, model)
    except dicom_query.QueryError as exc:
        logger.info("C-FIND from %s refused: %s", peer, exc)
        yield 0xA900, None
        return
    try:
        with services.db.connection() as conn:
            rows = dimse_query.find(conn, q.level, q.matches, MAX_FIND_RESULTS)
    except Exception:  # noqa: BLE001
        logger.exception("C-FIND on SCP %s failed", scp.name)
        yield 0xC001, None
        return
    for row in rows:
        yield 0xFF00, dicom_query.response(q, row)


def move(services: Services, scp: Scp, identifier: Dataset, model: str, destination: str,
         peer: net_scp.Peer) -> net_scp.MovePlan | None:
    """C-MOVE: the images matching the identifier, to the SCU whose AE title is ``destination``."""
    with services.db.connection() as conn:
        targets = repo.scus_by_ae_title(conn, destination)
        if not targets:
            logs.warn(services, SUBJECT, f"C-MOVE from {peer} to unknown destination {destination!r} refused")
            return None
        q = dicom_query.parse_identifier(identifier, model)
        ids = dimse_query.image_ids(conn, q.level, q.matches, MAX_MOVE_IMAGES)
    target = targets[0]
    logs.info(services, SUBJECT, f"C-MOVE from {peer} on SCP {scp.name!r}: {len(ids)} image(s) to SCU "
                                 f"{target.name!r} ({target.ae_title} at {target.host}:{target.port})")
    storage = services.storage
    return net_scp.MovePlan(host=target.host, port=target.port,
                            items=[functools.partial(local_copy, storage, i) for i in ids])


def handlers(services: Services, scp: Scp) -> net_scp.Handlers:
    return net_scp.Handlers(
        on_store=functools.partial(store_received, services, scp),
        on_find=functools.partial(find, services, scp),
        on_move=functools.partial(move, services, scp),
        on_association_end=functools.partial(association_ended, services, scp),
    )


# -- the long-running part ---------------------------------------------------------------------
class ScpListener:
    """A supervisor part: the listener of one SCP, binding again every few seconds until it can."""

    def __init__(self, services: Services, scp: Scp, retry_seconds: float | None = None):
        self.services = services
        self.scp = scp
        self.retry_seconds = float(services.config["SUPERVISOR_INTERVAL"] if retry_seconds is None
                                   else retry_seconds)
        self.listener = net_scp.Listener(scp.ae_title, str(services.config["SCP_HOST"]), scp.port,
                                         handlers(services, scp))
        self._stop = threading.Event()
        self._retry: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        return self.listener.alive()

    def start(self) -> None:
        if not self._bind(first=True):
            self._retry = threading.Thread(target=self._retry_loop, daemon=True,
                                           name=f"scp-retry-{self.scp.port}")
            self._retry.start()

    def _bind(self, first: bool) -> bool:
        try:
            self.listener.start()
        except OSError as exc:
            if first:
                logs.error(self.services, SUBJECT,
                           f"SCP {self.scp.name!r} cannot listen on port {self.scp.port}: {exc}; "
                           f"retrying every {self.retry_seconds:g} s")
            return False
        if not first:
            logs.info(self.services, SUBJECT, f"SCP {self.scp.name!r} listens on port {self.scp.port} now")
        else:
            logger.info("SCP %s (%s) listening on port %d", self.scp.name, self.scp.ae_title, self.scp.port)
        return True

    def _retry_loop(self) -> None:
        while not self._stop.wait(self.retry_seconds):
            try:
                if self._bind(first=False):
                    return
            except Exception:  # noqa: BLE001 - keep retrying
                logger.exception("SCP %s bind retry failed", self.scp.name)

    def stop(self) -> None:
        self._stop.set()
        if self._retry is not None:
            self._retry.join(timeout=5)
        self.listener.stop()

    def alive(self) -> bool:
        if self._stop.is_set():
            return False
        if self._retry is not None and self._retry.is_alive():
            return True
        return self.listener.alive()
