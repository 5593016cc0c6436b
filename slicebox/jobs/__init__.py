"""The long-running side: periodic sweeps and the supervised parts (box workers, listeners, ...).

Every gunicorn worker may call :func:`start`, but only the process that holds
the service lock (``Database.try_session_lock(SERVICE_LOCK)``: a file lock next
to the SQLite database, or a PostgreSQL advisory lock keyed by name and schema)
runs the APScheduler sweeps and the :class:`~slicebox.jobs.supervisor.Supervisor`.
When that process dies the lock is released and another worker takes over on
its next attempt.  :func:`stop` (gunicorn worker exit, interpreter exit,
``Services.close``) stops everything and releases the lock.

Each area has its supervisor provider in ``slicebox/jobs/<area>.py``; list it in
:data:`PROVIDERS`.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading

from apscheduler.schedulers.background import BackgroundScheduler

from slicebox.context import Services
from slicebox.db import SessionLock
from slicebox.jobs import boxes, directorywatches, forwarding, scps, seriestypes, tempfiles
from slicebox.jobs.supervisor import Provider, Supervisor
from slicebox.services import boxes as box_service
from slicebox.services import exports, filtering, users
from slicebox.services import forwarding as forwarding_service

logger = logging.getLogger(__name__)

LOCK_RETRY_SECONDS = 10
SERVICE_LOCK = "service"

#: every supervisor provider, one per area (add a line, do not reorder)
PROVIDERS: tuple[Provider, ...] = (
    boxes.parts,
    scps.parts,
    seriestypes.parts,
    forwarding.parts,
    directorywatches.parts,
    tempfiles.parts,
)


def _register_jobs(scheduler, services: Services) -> None:
    scheduler.add_job(users.purge_expired_sessions, "interval", minutes=10, args=[services],
                      id="purge-sessions", coalesce=True, max_instances=1)
    scheduler.add_job(exports.purge_expired, "interval", minutes=10, args=[services],
                      id="purge-export-sets", coalesce=True, max_instances=1)
    scheduler.add_job(box_service.revert_stale, "interval", seconds=30, args=[services],
                      id="revert-stale-transactions", coalesce=True, max_instances=1)
    scheduler.add_job(filtering.purge_orphans, "interval", seconds=60, args=[services],
                      id="purge-orphaned-filter-associations", coalesce=True, max_instances=1)
    scheduler.add_job(forwarding_service.purge_orphans, "interval", seconds=60, args=[services],
                      id="purge-orphaned-forwarding-rules", coalesce=True, max_instances=1)


class Background:
    """Tries for the service lock every few seconds; while held, runs the sweeps and the supervisor."""

    def __init__(self, services: Services, providers: tuple[Provider, ...] = PROVIDERS,
                 retry_seconds: float | None = None):
        self.services = services
        self.providers = providers
        if retry_seconds is None:
            retry_seconds = float(services.config.get("SERVICE_LOCK_RETRY", LOCK_RETRY_SECONDS))
        self.retry_seconds = retry_seconds
        self.lock: SessionLock | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.supervisor: Supervisor | None = None
        self._stopping = threading.Event()
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._attempt()  # at once, so a single process is the service process when start returns
        self._thread = threading.Thread(target=self._run, name="service-lock", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """True while this process is the service process."""
        return self.supervisor is not None

    def _run(self) -> None:
        while not self._stopping.wait(self.retry_seconds):
            self._attempt()

    def _attempt(self) -> None:
        with self._mutex:
            if self._stopping.is_set():
                return
            if self.lock is not None:
                if self.lock.held():
                    return
                logger.error("lost the service lock (database connection gone); stopping the services")
                self._stop_services()
            try:
                self.lock = self.services.db.try_session_lock(SERVICE_LOCK)
            except Exception:  # noqa: BLE001 - database down: try again later
                logger.exception("service lock attempt failed")
                return
            if self.lock is None:
                return
            try:
                scheduler = BackgroundScheduler(daemon=True)
                _register_jobs(scheduler, self.services)
                scheduler.start()
                self.scheduler = scheduler
                self.supervisor = Supervisor(self.services, self.providers)
                self.supervisor.start()
            except Exception:  # noqa: BLE001
                logger.exception("could not start the services; trying again later")
                self._stop_services()
                return
            logger.info("this process (pid %d) runs the long-running services", os.getpid())

    def _stop_services(self) -> None:
        supervisor, self.supervisor = self.supervisor, None
        if supervisor is not None:
            supervisor.stop()
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            try:
                scheduler.shutdown(wait=False)
            except Exception:  # noqa: BLE001 - already shut down
                pass
        lock, self.lock = self.lock, None
        if lock is not None:
            lock.release()

    def stop(self) -> None:
        """Stop the sweeps and every part, release the lock (idempotent)."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        with self._mutex:
            was_running = self.supervisor is not None
            self._stop_services()
        if was_running:
            logger.info("this process (pid %d) stopped the long-running services", os.getpid())


def start(services: Services) -> Background:
    """Try to become the service process now and every few seconds after."""
    if services.state.background is not None:
        return services.state.background
    background = Background(services)
    services.state.background = background
    background.start()
    atexit.register(background.stop)
    return background


def stop(services: Services) -> None:
    """Stop this process's long-running side, if it started one (idempotent)."""
    background, services.state.background = services.state.background, None
    if background is not None:
        background.stop()
