"""Supervisor provider for the temp-folder sweep: leftovers of killed uploads never pile up.

Spool files of an upload cut off by a killed worker or box stay in the
storage's temp folder (hundreds of MB each); the sweep removes those whose
owner process is gone, once when this process becomes the service process and
then every ``TEMP_SWEEP_INTERVAL`` seconds (see ``storage.tempfiles.sweep``).
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from slicebox.context import Services
from slicebox.jobs.supervisor import Part
from slicebox.storage.tempfiles import sweep

logger = logging.getLogger(__name__)

KEY = "temp-sweep"


class TempSweeper:
    """Sweeps at start and then every interval, in its own thread."""

    def __init__(self, services: Services):
        self.services = services
        self.interval = max(0.1, float(services.config["TEMP_SWEEP_INTERVAL"]))
        self.max_age = float(services.config["TEMP_MAX_AGE"])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self) -> list[str]:
        removed = sweep(self.services.storage.temp_dir(), self.max_age)
        if removed:
            logger.info("removed %d stale temporary file(s): %s", len(removed), ", ".join(removed[:10]))
        return removed

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="temp-sweep", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep_once()
            except Exception:  # noqa: BLE001 - a full disk or a vanished folder must not end the sweeps
                logger.exception("temp sweep failed")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()


def parts(services: Services) -> dict[str, Callable[[], Part]]:
    """One sweeper per service process."""
    return {KEY: lambda: TempSweeper(services)}
