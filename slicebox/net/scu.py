"""Sending stored DICOM files to a remote SCP over one association (C-STORE SCU).

Each file is proposed in its own transfer syntax (one presentation context per
SOP class and syntax, so the peer accepts or refuses each on its own), plus
Explicit and Implicit VR Little Endian fallbacks per SOP class.  A file whose
own syntax was accepted is sent from disk, unparsed; otherwise it is read with
pydicom, decompressed when compressed (pylibjpeg plugins), and sent in a
fallback syntax (PS3.4 B.2 / PS3.8 7.1.1.13).
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable, ContextManager, Sequence

from pydicom import dcmread
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.presentation import PresentationContext
from pynetdicom.status import code_to_category

from slicebox.net import MAX_PDU, handle_conn_open

logger = logging.getLogger(__name__)

#: pynetdicom (and PS3.8) allow at most 128 presentation contexts per association request
MAX_CONTEXTS = 128
_FALLBACKS = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


class AssociationFailed(Exception):
    """The peer could not be reached, refused the association, or it broke off."""


@dataclass(frozen=True)
class FileMeta:
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


@dataclass(frozen=True)
class Item:
    """One file to send: ``key`` identifies it to the caller, ``open`` gives a local path."""

    key: object
    meta: FileMeta
    open: Callable[[], ContextManager[str]]


@dataclass(frozen=True)
class ItemResult:
    key: object
    #: the peer's C-STORE status, None when there was no answer
    status: int | None
    #: "Success", "Warning" or "Failure"
    category: str
    detail: str = ""
    decompressed: bool = False

    @property
    def ok(self) -> bool:
        return self.category in ("Success", "Warning")


def read_meta(path: str) -> FileMeta:
    """SOP class, SOP instance and transfer syntax from a Part 10 file's meta information.

    Raises ValueError when one of them is missing.
    """
    meta = read_file_meta_info(path)
    values = [str(meta.get(k, "") or "").strip() for k in
              ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")]
    if not all(values):
        raise ValueError("file meta information lacks the SOP class, SOP instance or transfer syntax UID")
    return FileMeta(*values)


def context_groups(metas: Sequence[FileMeta]) -> list[list[PresentationContext]]:
    """Presentation contexts for these files, in groups of at most 128 (one association each).

    Per SOP class: one context per transfer syntax its files have, then Explicit
    and Implicit VR Little Endian fallbacks, each context with a single syntax.
    A SOP class's contexts never straddle two groups.
    """
    by_class: dict[str, list[str]] = {}
    for meta in metas:
        syntaxes = by_class.setdefault(meta.sop_class_uid, [])
        if meta.transfer_syntax_uid not in syntaxes:
            syntaxes.append(meta.transfer_syntax_uid)
    groups: list[list[PresentationContext]] = [[]]
    for sop_class, syntaxes in by_class.items():
        wanted = list(syntaxes) + [ts for ts in _FALLBACKS if ts not in syntaxes]
        wanted = wanted[:MAX_CONTEXTS]
        if len(groups[-1]) + len(wanted) > MAX_CONTEXTS:
            groups.append([])
        for ts in wanted:
            cx = PresentationContext()
            cx.abstract_syntax = UID(sop_class)
            cx.transfer_syntax = [UID(ts)]
            groups[-1].append(cx)
    return [g for g in groups if g]


def _accepted(assoc) -> dict[str, set[str]]:
    accepted: dict[str, set[str]] = {}
    for cx in assoc.accepted_contexts:
        accepted.setdefault(str(cx.abstract_syntax), set()).add(str(cx.transfer_syntax[0]))
    return accepted


def _describe_failure(assoc, host: str, port: int, called_ae: str) -> str:
    peer = f"{called_ae} at {host}:{port}"
    if assoc.is_rejected:
        return f"peer {peer} refused the association"
    if assoc.is_aborted:
        return f"peer {peer} aborted the association request"
    return f"could not connect to peer {peer}"


def open_association(host: str, port: int, called_ae: str, calling_ae: str,
                     contexts: list[PresentationContext], timeout: float):
    """An established association, or AssociationFailed saying why not."""
    ae = AE(ae_title=calling_ae)
    ae.maximum_pdu_size = MAX_PDU
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = max(timeout, 60)
    ae.network_timeout = max(timeout, 60)
    try:
        assoc = ae.associate(host, port, contexts=contexts, ae_title=called_ae, max_pdu=MAX_PDU,
                             evt_handlers=[(evt.EVT_CONN_OPEN, handle_conn_open)])
    except (OSError, ValueError, RuntimeError) as exc:
        raise AssociationFailed(f"could not connect to peer {called_ae} at {host}:{port}: {exc}") from None
    if not assoc.is_established:
        raise AssociationFailed(_describe_failure(assoc, host, port, called_ae))
    if not assoc.accepted_contexts:
        assoc.release()
        raise AssociationFailed(f"peer {called_ae} at {host}:{port} accepted none of the "
                                f"{len(contexts)} presentation contexts proposed")
    return assoc


def send_one(assoc, path: str, meta: FileMeta, accepted: dict[str, set[str]], key: object = None,
             peer: str = "peer") -> ItemResult:
    """C-STORE one file on an established association."""
    syntaxes = accepted.get(meta.sop_class_uid, set())
    decompressed = False
    if meta.transfer_syntax_uid in syntaxes:
        status_ds = assoc.send_c_store(path)
    else:
        fallback = [ts for ts in _FALLBACKS if ts in syntaxes]
        if not fallback:
            return ItemResult(key, None, "Failure",
                              f"{peer} accepted no presentation context for SOP class {meta.sop_class_uid}")
        if meta.transfer_syntax_uid == ExplicitVRBigEndian:
            # pydicom does not byte-swap OW pixel data when re-encoding: refuse rather than corrupt
            return ItemResult(key, None, "Failure",
                              f"{peer} does not accept Explicit VR Big Endian for {meta.sop_class_uid}")
        ds = dcmread(path)
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress()
            decompressed = True
        status_ds = assoc.send_c_store(ds)
    status = getattr(status_ds, "Status", None) if status_ds is not None else None
    if status is None:
        return ItemResult(key, None, "Failure", f"no C-STORE response from {peer}", decompressed)
    category = code_to_category(int(status))
    if category not in ("Success", "Warning"):
        comment = str(getattr(status_ds, "ErrorComment", "") or "")
        return ItemResult(key, int(status), "Failure",
                          f"{peer} answered status 0x{int(status):04X}" + (f" ({comment})" if comment else ""),
                          decompressed)
    return ItemResult(key, int(status), category, "", decompressed)


def send(host: str, port: int, called_ae: str, calling_ae: str, items: Sequence[Item],
         timeout: float = 10.0) -> list[ItemResult]:
    """Send ``items`` to the SCP at ``host:port``; one result per item, in order.

    Normally over one association (more only past 128 presentation contexts).
    A failure status for one item does not stop the others.

    Raises
    ------
    AssociationFailed
        The peer is unreachable, refused the association, or the association
        broke off before every item was answered (nothing is retried).
    """
    peer = f"{called_ae} at {host}:{port}"
    results: list[ItemResult] = []
    groups = context_groups([i.meta for i in items])
    remaining = list(items)
    for contexts in groups:
        classes = {str(cx.abstract_syntax) for cx in contexts}
        batch = [i for i in remaining if i.meta.sop_class_uid in classes]
        remaining = [i for i in remaining if i.meta.sop_class_uid not in classes]
        assoc = open_association(host, port, called_ae, calling_ae, contexts, timeout)
        try:
            accepted = _accepted(assoc)
            for item in batch:
                if not assoc.is_established:
                    raise AssociationFailed(f"peer {peer} ended the association after "
                                            f"{len(results)} of {len(items)} images")
                try:
                    with item.open() as path:
                        result = send_one(assoc, path, item.meta, accepted, item.key, peer)
                except (OSError, ValueError, AttributeError, NotImplementedError, RuntimeError) as exc:
                    if not assoc.is_established:
                        raise AssociationFailed(f"peer {peer} ended the association: {exc}") from None
                    logger.warning("could not send %s to %s", item.key, peer, exc_info=True)
                    result = ItemResult(item.key, None, "Failure", f"could not send: {exc}")
                results.append(result)
        finally:
            if assoc.is_established:
                assoc.release()
    order = {id(i): n for n, i in enumerate(items)}
    by_key = {id(i): r for i, r in zip(_sent_order(items, groups), results)}
    return [by_key[id(i)] for i in sorted(items, key=lambda i: order[id(i)])]


def _sent_order(items: Sequence[Item], groups: list[list[PresentationContext]]) -> list[Item]:
    remaining = list(items)
    out: list[Item] = []
    for contexts in groups:
        classes = {str(cx.abstract_syntax) for cx in contexts}
        out.extend(i for i in remaining if i.meta.sop_class_uid in classes)
        remaining = [i for i in remaining if i.meta.sop_class_uid not in classes]
    return out


@contextlib.contextmanager
def local_file(path: str):
    """``Item.open`` for a file that is already local."""
    yield path
