"""The Services container: everything a service function needs, built once per app.

Views get it with :func:`get_services`; background jobs receive it as an
argument.  Nothing outside a request touches Flask's globals.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Callable

from slicebox.db import Database
from slicebox.storage import Storage

logger = logging.getLogger(__name__)


def _default_stop() -> None:
    """Stop the server gracefully: SIGTERM to gunicorn's arbiter, else to ourselves."""
    arbiter = os.environ.get("SLICEBOX_ARBITER_PID")
    pid = int(arbiter) if arbiter and arbiter.isdigit() else os.getpid()
    os.kill(pid, signal.SIGTERM)


@dataclass
class Services:
    config: dict
    db: Database
    storage: Storage
    #: called (after a short delay) by POST /system/stop; tests replace it
    on_stop: Callable[[], None] = _default_stop
    #: caches and small shared state, keyed by area
    state: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        self.db.close()


def get_services() -> Services:
    from flask import current_app

    return current_app.extensions["slicebox"]
