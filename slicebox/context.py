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
from typing import Callable, Protocol

from slicebox.db import Database
from slicebox.lru import ByteLRU
from slicebox.storage import Storage

logger = logging.getLogger(__name__)


def _default_stop() -> None:
    """Stop the server gracefully: SIGTERM to gunicorn's arbiter, else to ourselves."""
    arbiter = os.environ.get("SLICEBOX_ARBITER_PID")
    pid = int(arbiter) if arbiter and arbiter.isdigit() else os.getpid()
    os.kill(pid, signal.SIGTERM)


class Stoppable(Protocol):
    def stop(self) -> None: ...


@dataclass
class State:
    """Small shared state of one app (one process), each piece typed and named."""

    #: (password hash, sha256 of a password) pairs already verified (users service)
    verified_passwords: set[tuple[str, bytes]] = field(default_factory=set)
    #: a hash of a random password, checked for unknown users so timing tells nothing
    dummy_password_hash: str | None = None
    #: (kind, scope, real value) -> pseudonym row (anonymization service)
    pseudonyms: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    #: set to wake the box transfer worker early (it runs in the service process)
    box_wakeup: threading.Event = field(default_factory=threading.Event)
    #: the long-running side when this process started it (jobs.start); stopped on close
    background: Stoppable | None = None
    #: rendered PNGs of this process, keyed by image, its SOP Instance UID and the view (rendering service)
    rendered: ByteLRU | None = None


@dataclass
class Services:
    config: dict
    db: Database
    storage: Storage
    #: called (after a short delay) by POST /system/stop; tests replace it
    on_stop: Callable[[], None] = _default_stop
    #: caches and small shared state
    state: State = field(default_factory=State)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        background, self.state.background = self.state.background, None
        if background is not None:
            background.stop()
        self.db.close()


def get_services() -> Services:
    from flask import current_app

    return current_app.extensions["slicebox"]
