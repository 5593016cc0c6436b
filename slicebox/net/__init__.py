"""DICOM networking with pynetdicom: listeners (:mod:`.scp`) and the sender (:mod:`.scu`).

This package knows DICOM networking only; it never imports services.  What to
do with a received dataset, a query or a retrieve is passed in as callbacks.

Protocol choices shared by both sides (measured, see ECOSYSTEM.md): TCP_NODELAY
on every association socket (without it each C-STORE waits ~40 ms for Nagle),
a maximum PDU of 256 KiB, datasets received straight to a file without being
decoded and files sent from disk without being parsed.
"""
from __future__ import annotations

import logging
import socket

from pynetdicom import _config

#: Largest PDU we announce we can receive, in bytes (dcmtk and pynetdicom default to 16 KiB).
MAX_PDU = 256 * 1024

# Received C-STORE data goes to a file as it arrives (never a whole dataset in memory);
# a file path given to send_c_store is sent from disk, unparsed.  Process-wide
# pynetdicom switches, not application settings: every box wants both.
_config.STORE_RECV_CHUNKED_DATASET = True
_config.STORE_SEND_CHUNKED_DATASET = True
# pynetdicom logs every PDU and message at INFO/DEBUG; our own loggers say what matters.
logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def handle_conn_open(event) -> None:
    """EVT_CONN_OPEN handler: switch Nagle off on the association's socket."""
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # closed already
            pass
