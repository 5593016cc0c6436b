"""The supervisor: keeps the long-running parts running as the database says they should.

A *part* is anything long-running (the box transfer worker, a DICOM listener, a
directory watch, ...) that starts its own threads.  A *provider* reads the
database and returns the parts that should run now, as ``key -> factory``; the
key encodes everything whose change needs a restart (e.g.
``f"scp:{id}:{ae_title}:{port}"``).

In the process holding the service lock (see :mod:`slicebox.jobs`) the
supervisor calls :meth:`Supervisor.reconcile` every
``SUPERVISOR_INTERVAL`` seconds: it starts parts for new keys, stops parts
whose key vanished, and restarts parts that died (logged, also to the box's
event log under the subject ``System``).  :meth:`Supervisor.stop` stops them
all.  Tests call ``reconcile()`` once, synchronously, without the thread.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable, Protocol

from slicebox.context import Services
from slicebox.services import logs

logger = logging.getLogger(__name__)

LOG_SUBJECT = "System"


class Part(Protocol):
    def start(self) -> None: ...   # returns promptly; runs its own thread(s)
    def stop(self) -> None: ...    # idempotent; returns when stopped (bounded, a few seconds)
    def alive(self) -> bool: ...   # False once it crashed or ended by itself


PartFactory = Callable[[], Part]
Provider = Callable[[Services], "dict[str, PartFactory]"]


class Supervisor:
    """Starts, stops and restarts the parts the providers ask for."""

    def __init__(self, services: Services, providers: Iterable[Provider], interval: float | None = None):
        self.services = services
        self.providers = tuple(providers)
        self.interval = float(services.config["SUPERVISOR_INTERVAL"] if interval is None else interval)
        #: key -> (provider index, running part)
        self._parts: dict[str, tuple[int, Part]] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what runs ------------------------------------------------------------------
    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._parts)

    def part(self, key: str) -> Part | None:
        with self._lock:
            entry = self._parts.get(key)
            return None if entry is None else entry[1]

    # -- one pass -------------------------------------------------------------------
    def reconcile(self) -> None:
        """Make the running parts match what the providers want now (synchronous)."""
        with self._lock:
            if self._stopping.is_set():
                return
            for index, provider in enumerate(self.providers):
                try:
                    wanted = dict(provider(self.services))
                except Exception:  # noqa: BLE001 - database down or a bug: keep what runs
                    logger.exception("provider %s failed; its parts are left as they are",
                                     _name(provider))
                    continue
                self._reconcile_provider(index, wanted)

    def _reconcile_provider(self, index: int, wanted: dict[str, PartFactory]) -> None:
        mine = {key for key, (owner, _) in self._parts.items() if owner == index}
        for key in sorted(mine - set(wanted)):
            self._stop_part(key)
            logger.info("stopped %s", key)
        for key, factory in wanted.items():
            entry = self._parts.get(key)
            if entry is not None and entry[0] != index:
                logger.error("part key %s is provided twice; ignored the second", key)
                continue
            if entry is not None:
                if _alive(entry[1]):
                    continue
                self._stop_part(key)
                self._report(f"{key} stopped unexpectedly; restarting it")
            self._start_part(index, key, factory)

    def _start_part(self, index: int, key: str, factory: PartFactory) -> None:
        try:
            part = factory()
            part.start()
        except Exception as exc:  # noqa: BLE001 - tried again on the next pass
            logger.exception("could not start %s", key)
            self._report(f"could not start {key}: {exc}")
            return
        self._parts[key] = (index, part)
        logger.info("started %s", key)

    def _stop_part(self, key: str) -> None:
        _, part = self._parts.pop(key)
        try:
            part.stop()
        except Exception:  # noqa: BLE001 - stopping one part must not keep others running
            logger.exception("stopping %s failed", key)

    def _report(self, message: str) -> None:
        logger.warning("%s", message)
        try:
            logs.warn(self.services, LOG_SUBJECT, message)
        except Exception:  # noqa: BLE001 - the database may be the reason
            logger.exception("could not write to the event log")

    # -- the loop -------------------------------------------------------------------
    def start(self) -> None:
        """Reconcile now and then every ``interval`` seconds in a daemon thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.reconcile()
            except Exception:  # noqa: BLE001 - the loop must outlive any bug
                logger.exception("supervisor pass failed")
            self._stopping.wait(self.interval)

    def stop(self) -> None:
        """Stop the loop and every part (idempotent)."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        with self._lock:
            for key in sorted(self._parts):
                self._stop_part(key)
                logger.info("stopped %s", key)


def _alive(part: Part) -> bool:
    try:
        return bool(part.alive())
    except Exception:  # noqa: BLE001
        return False


def _name(provider: Provider) -> str:
    return f"{getattr(provider, '__module__', '?')}.{getattr(provider, '__qualname__', repr(provider))}"
