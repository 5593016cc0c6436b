"""A DICOM listener (SCP): C-ECHO, C-STORE, C-FIND and C-MOVE on one port and AE title.

:class:`Listener` starts and stops one pynetdicom association server.  What
happens to received data is decided by the callbacks in :class:`Handlers`
(the services layer supplies them); this module never stores or queries
anything itself.

Receiving (PS3.4 Annex B): every storage SOP class pynetdicom knows, in every
transfer syntax except JPIP references.  A dataset arrives straight into a
file (pynetdicom's chunked receive: preamble, file meta built from the
command set and the accepted syntax, then the bytes as received, never
decoded); ``on_store`` gets its path, consumes it and returns the C-STORE
status.  A partial file left by a peer that aborts mid-dataset is removed when
the connection closes.  Several associations are served at once, one thread each.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator, Sequence

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import AllTransferSyntaxes, UID
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from slicebox.net import MAX_PDU, handle_conn_open
from slicebox.net import scu

logger = logging.getLogger(__name__)

#: transfer syntaxes a listener accepts for storage (JPIP ones reference pixel data elsewhere)
STORAGE_SYNTAXES = tuple(ts for ts in AllTransferSyntaxes if "JPIP" not in ts.name)
#: query/retrieve information model -> "patient" / "study" (slicebox.dicom.query models)
FIND_MODELS = {PatientRootQueryRetrieveInformationModelFind: "patient",
               StudyRootQueryRetrieveInformationModelFind: "study"}
MOVE_MODELS = {PatientRootQueryRetrieveInformationModelMove: "patient",
               StudyRootQueryRetrieveInformationModelMove: "study"}

# C-STORE statuses (PS3.4 B.2.3)
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000


@dataclass(frozen=True)
class Peer:
    """The calling side of an association."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title} ({self.host}:{self.port})"


@dataclass(frozen=True)
class StoreRequest:
    #: a Part 10 file (preamble, file meta, the dataset as received); the callback consumes it
    path: str
    peer: Peer
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


@dataclass
class MovePlan:
    """Where a C-MOVE goes and what it sends."""

    host: str
    port: int
    #: one opener per image: a context manager yielding a local Part 10 path
    items: Sequence[Callable[[], ContextManager[str]]]


@dataclass
class AssociationReport:
    """What one association did, given to ``on_association_end``."""

    peer: Peer
    stored: int = 0
    failed: int = 0
    aborted: bool = False


@dataclass
class Handlers:
    #: C-STORE: returns the status (never raises; an exception becomes 0xA700)
    on_store: Callable[[StoreRequest], int]
    #: C-FIND: (identifier, "patient" | "study", peer) -> (status, identifier) pairs, pending ones first
    on_find: Callable[[Dataset, str, Peer], Iterator[tuple[int, Dataset | None]]] | None = None
    #: C-MOVE: (identifier, model, move destination AE, peer) -> MovePlan, None for an unknown destination
    on_move: Callable[[Dataset, str, str, Peer], MovePlan | None] | None = None
    on_association_end: Callable[[AssociationReport], None] | None = None


def _peer(assoc) -> Peer:
    info = assoc.requestor
    ae_title = info.ae_title if isinstance(info.ae_title, str) else bytes(info.ae_title).decode("ascii", "replace")
    try:
        host, port = info.address, int(info.port)
    except (AttributeError, TypeError, ValueError):
        host, port = "?", 0
    return Peer(ae_title.strip(), host, port)


class Listener:
    """One association server on ``host:port`` answering to ``ae_title``.

    :meth:`start` binds the port (``OSError`` when it cannot) and serves in a
    thread; :meth:`stop` closes the port and waits for the thread.
    """

    def __init__(self, ae_title: str, host: str, port: int, handlers: Handlers,
                 max_associations: int = 16, network_timeout: float = 60.0):
        self.ae_title = ae_title
        self.host = host
        self.port = port
        self.handlers = handlers
        self.max_associations = max_associations
        self.network_timeout = network_timeout
        self._server = None
        self._thread: threading.Thread | None = None
        self._reports: dict[int, AssociationReport] = {}
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------
    def _make_ae(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = MAX_PDU
        ae.maximum_associations = self.max_associations
        ae.network_timeout = self.network_timeout
        ae.dimse_timeout = self.network_timeout
        ae.acse_timeout = 30
        ae.add_supported_context(Verification)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, list(STORAGE_SYNTAXES))
        if self.handlers.on_find is not None:
            for uid in FIND_MODELS:
                ae.add_supported_context(uid)
        if self.handlers.on_move is not None:
            for uid in MOVE_MODELS:
                ae.add_supported_context(uid)
        return ae

    def start(self) -> None:
        ae = self._make_ae()
        handlers = [
            (evt.EVT_CONN_OPEN, handle_conn_open),
            (evt.EVT_CONN_CLOSE, self._handle_conn_close),
            (evt.EVT_ABORTED, self._handle_aborted),
            (evt.EVT_C_ECHO, lambda event: SUCCESS),
            (evt.EVT_C_STORE, self._handle_store),
        ]
        if self.handlers.on_find is not None:
            handlers.append((evt.EVT_C_FIND, self._handle_find))
        if self.handlers.on_move is not None:
            handlers.append((evt.EVT_C_MOVE, self._handle_move))
        # make_server binds now: a port in use raises OSError here, in the caller
        self._server = ae.make_server((self.host, self.port), evt_handlers=handlers)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"scp-{self.ae_title}-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:
                server.shutdown()
            except Exception:  # noqa: BLE001 - already closed
                logger.debug("shutdown of listener %s failed", self.port, exc_info=True)
            for assoc in list(getattr(server, "active_associations", []) or []):
                try:
                    assoc.abort()
                except Exception:  # noqa: BLE001
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def alive(self) -> bool:
        return self._server is not None and self._thread is not None and self._thread.is_alive()

    # -- per association ----------------------------------------------------------------
    def _report(self, assoc) -> AssociationReport:
        with self._lock:
            report = self._reports.get(id(assoc))
            if report is None:
                report = self._reports[id(assoc)] = AssociationReport(_peer(assoc))
            return report

    def _handle_aborted(self, event) -> None:
        self._report(event.assoc).aborted = True

    def _handle_conn_close(self, event) -> None:
        assoc = event.assoc
        # A dataset cut off by an abort or a dropped connection: remove its partial file.
        message = getattr(getattr(assoc, "dimse", None), "message", None)
        partial = getattr(message, "_data_set_file", None)
        if partial is not None:
            try:
                partial.close()
                os.unlink(partial.name)
                logger.warning("removed a partial dataset from %s (association ended mid-dataset)",
                               _peer(assoc))
            except OSError:
                pass
        with self._lock:
            report = self._reports.pop(id(assoc), None)
        if report is not None and self.handlers.on_association_end is not None:
            try:
                self.handlers.on_association_end(report)
            except Exception:  # noqa: BLE001 - a report must never break the listener
                logger.exception("on_association_end failed")

    def _handle_store(self, event) -> int:
        req = event.request
        path = str(event.dataset_path)
        report = self._report(event.assoc)
        try:
            status = self.handlers.on_store(StoreRequest(
                path=path, peer=report.peer,
                sop_class_uid=str(req.AffectedSOPClassUID or ""),
                sop_instance_uid=str(req.AffectedSOPInstanceUID or ""),
                transfer_syntax_uid=str(event.context.transfer_syntax)))
        except Exception:  # noqa: BLE001 - never raise out of a handler
            logger.exception("C-STORE handler failed")
            status = OUT_OF_RESOURCES
        finally:
            try:
                os.unlink(path)  # consumed by on_store normally; gone either way
            except OSError:
                pass
        if status in (SUCCESS,) or 0xB000 <= status <= 0xBFFF:
            report.stored += 1
        else:
            report.failed += 1
        return status

    def _handle_find(self, event):
        model = FIND_MODELS.get(UID(str(event.request.AffectedSOPClassUID)), "study")
        peer = self._report(event.assoc).peer
        try:
            identifier = event.identifier
        except Exception as exc:  # noqa: BLE001 - undecodable identifier
            logger.warning("C-FIND from %s: cannot decode the identifier: %s", peer, exc)
            yield 0xC000, None
            return
        for status, ds in self.handlers.on_find(identifier, model, peer):
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield status, ds

    def _handle_move(self, event):
        model = MOVE_MODELS.get(UID(str(event.request.AffectedSOPClassUID)), "study")
        peer = self._report(event.assoc).peer
        destination = str(event.move_destination or "").strip()
        try:
            plan = self.handlers.on_move(event.identifier, model, destination, peer)
        except Exception:  # noqa: BLE001
            logger.exception("C-MOVE handler failed")
            plan = None
        if plan is None:
            yield None, None
            return
        metas = []
        for opener in plan.items:
            with opener() as path:
                metas.append(scu.read_meta(path))
        captured: dict = {}

        def on_accepted(ev):
            captured["assoc"] = ev.assoc

        contexts = scu.context_groups(metas)[0] if metas else []
        yield plan.host, plan.port, {
            "contexts": contexts or None,
            "max_pdu": MAX_PDU,
            "evt_handlers": [(evt.EVT_CONN_OPEN, handle_conn_open), (evt.EVT_ACCEPTED, on_accepted)],
        }
        yield len(plan.items)
        for opener, meta in zip(plan.items, metas):
            if event.is_cancelled:
                yield 0xFE00, None
                return
            accepted = scu._accepted(captured["assoc"]) if "assoc" in captured else {}
            with opener() as path:
                ds = dcmread(path)
            if meta.transfer_syntax_uid not in accepted.get(meta.sop_class_uid, set()) \
                    and ds.file_meta.TransferSyntaxUID.is_compressed:
                ds.decompress()
            yield 0xFF00, ds
