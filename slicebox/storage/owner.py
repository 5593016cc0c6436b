"""Who owns a temporary file: its name carries the host and process id (read by the temp sweep)."""
from __future__ import annotations

import os
import re
import socket

HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname() or "host")[:64]
#: ``sb-<host>-<pid>-...``
OWNED = re.compile(r"^sb-(?P<host>[A-Za-z0-9._]+)-(?P<pid>[0-9]+)-")


def owner_prefix() -> str:
    """File name prefix naming the host and process that own a temporary file."""
    return f"sb-{HOST}-{os.getpid()}-"
