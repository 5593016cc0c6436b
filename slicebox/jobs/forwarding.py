"""Supervisor provider for the forwarding worker: one per service process."""
from __future__ import annotations

import logging
import threading
from typing import Callable

from slicebox.context import Services
from slicebox.jobs.supervisor import Part
from slicebox.services import forwarding

logger = logging.getLogger(__name__)

KEY = "forwarding"


class ForwardingWorker:
    """Runs :func:`forwarding.run_once` every ``FORWARDING_INTERVAL`` seconds (all state is in the database)."""

    def __init__(self, services: Services):
        self.services = services
        self.interval = float(services.config["FORWARDING_INTERVAL"])
        self.wakeup = services.state.forwarding_wakeup
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=KEY, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wakeup.clear()
            try:
                forwarding.run_once(self.services)
            except Exception:  # noqa: BLE001 - database down or a bug: the next round tries again
                logger.exception("forwarding round failed")
            self.wakeup.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def parts(services: Services) -> dict[str, Callable[[], Part]]:
    return {KEY: lambda: ForwardingWorker(services)}
