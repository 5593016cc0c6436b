"""The long-running side: periodic sweeps (and, later, listeners and box workers).

Every gunicorn worker may call :func:`start`, but only the process that holds
the service lock runs the scheduler: a file lock next to the data (SQLite) or
a PostgreSQL advisory lock held on a dedicated connection.  When that process
dies the lock is released and another worker takes over on its next attempt.
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading

from slicebox.context import Services
from slicebox.services import boxes, exports, users
from slicebox.services.box_transfer import TransferWorker

logger = logging.getLogger(__name__)

LOCK_RETRY_SECONDS = 10
_SERVICE_LOCK_KEY = 0x51CEB2


class ServiceLock:
    def __init__(self, services: Services):
        self.services = services
        self._fh = None
        self._pg = None

    def try_acquire(self) -> bool:
        if self.services.db.is_sqlite:
            path = os.path.join(self.services.config["DATA_DIR"], "service.lock")
            fh = open(path, "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                return False
            self._fh = fh
            return True
        import psycopg

        conn = psycopg.connect(self.services.db.url.split("?")[0], autocommit=True)
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_SERVICE_LOCK_KEY,)).fetchone()[0]
        if not got:
            conn.close()
            return False
        self._pg = conn
        return True

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._pg is not None:
            self._pg.close()
            self._pg = None


def _register_jobs(scheduler, services: Services) -> None:
    scheduler.add_job(users.purge_expired_sessions, "interval", minutes=10, args=[services],
                      id="purge-sessions", coalesce=True, max_instances=1)
    scheduler.add_job(exports.purge_expired, "interval", minutes=10, args=[services],
                      id="purge-export-sets", coalesce=True, max_instances=1)
    scheduler.add_job(boxes.revert_stale, "interval", seconds=30, args=[services],
                      id="revert-stale-transactions", coalesce=True, max_instances=1)


def start(services: Services) -> None:
    """Try to become the service process now and every few seconds after."""
    lock = ServiceLock(services)

    def attempt():
        try:
            if not lock.try_acquire():
                timer = threading.Timer(LOCK_RETRY_SECONDS, attempt)
                timer.daemon = True
                timer.start()
                return
        except Exception:  # noqa: BLE001 - database down: try again later
            logger.exception("service lock attempt failed")
            timer = threading.Timer(LOCK_RETRY_SECONDS, attempt)
            timer.daemon = True
            timer.start()
            return
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(daemon=True)
        _register_jobs(scheduler, services)
        scheduler.start()
        services.state["scheduler"] = scheduler
        worker = TransferWorker(services)
        worker.start()
        services.state["box_worker"] = worker
        services.state["service_lock"] = lock
        logger.info("this process (pid %d) runs the long-running services", os.getpid())

    attempt()


def stop(services: Services) -> None:
    worker = services.state.pop("box_worker", None)
    if worker is not None:
        worker.stop()
    scheduler = services.state.pop("scheduler", None)
    if scheduler is not None:
        scheduler.shutdown(wait=False)
    lock = services.state.pop("service_lock", None)
    if lock is not None:
        lock.release()
